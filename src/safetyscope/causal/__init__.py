"""Intervene and measure: activation-patching sweeps (and, next, the metric-under-edit runner,
controls, selection and attribution)."""

from safetyscope.causal.corrupt import CORRUPTIONS, Corruption
from safetyscope.causal.patch_spec import COMPONENTS, MODES, PatchingError, PatchTarget
from safetyscope.causal.patching import patching_sweep
from safetyscope.causal.patching_metrics import METRICS, PatchMetric, make_metric, normalised_recovery
from safetyscope.causal.patching_result import PatchingResult, PatchScore

__all__ = [
    "COMPONENTS",
    "CORRUPTIONS",
    "METRICS",
    "MODES",
    "Corruption",
    "PatchMetric",
    "PatchScore",
    "PatchTarget",
    "PatchingError",
    "PatchingResult",
    "make_metric",
    "normalised_recovery",
    "patching_sweep",
]
