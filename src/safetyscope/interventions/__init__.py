"""Interventions: steering, ablation, affine editing, CAST, patching, weight orthogonalization."""
