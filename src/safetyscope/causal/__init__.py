"""Intervene and measure: the metric-under-edits runner, controls, causal direction selection,
intervention arms with controls, first-order estimates, and activation-patching sweeps."""

from safetyscope.causal.arms import (
    Arm,
    ArmResult,
    BaselineCache,
    InterventionReport,
    direction_arms,
    run_arms,
)
from safetyscope.causal.controls import gaussian_noise, mean_ablation, random_like, shuffled_labels
from safetyscope.causal.corrupt import CORRUPTIONS, Corruption
from safetyscope.causal.front import FrontObjective, FrontParams, KernelParams, TrialScore, pareto_mask
from safetyscope.causal.front_result import FrontCheck, RobustnessFront
from safetyscope.causal.patch_spec import COMPONENTS, MODES, PatchingError, PatchTarget
from safetyscope.causal.patching import patching_sweep
from safetyscope.causal.patching_metrics import METRICS, PatchMetric, make_metric, normalised_recovery
from safetyscope.causal.patching_result import PatchingResult, PatchScore
from safetyscope.causal.runner import EditScore, MetricUnderEdits, measure, refusal_metric
from safetyscope.causal.selection import (
    SELECTION_MODES,
    Candidate,
    Selection,
    SelectionError,
    candidate_directions,
    rank_candidates,
    select_direction,
)

__all__ = [
    "COMPONENTS",
    "CORRUPTIONS",
    "METRICS",
    "MODES",
    "SELECTION_MODES",
    "Arm",
    "ArmResult",
    "BaselineCache",
    "Candidate",
    "Corruption",
    "EditScore",
    "FrontCheck",
    "FrontObjective",
    "FrontParams",
    "InterventionReport",
    "KernelParams",
    "MetricUnderEdits",
    "PatchMetric",
    "PatchScore",
    "PatchTarget",
    "PatchingError",
    "PatchingResult",
    "RobustnessFront",
    "Selection",
    "SelectionError",
    "TrialScore",
    "candidate_directions",
    "direction_arms",
    "gaussian_noise",
    "make_metric",
    "mean_ablation",
    "measure",
    "normalised_recovery",
    "pareto_mask",
    "patching_sweep",
    "random_like",
    "rank_candidates",
    "refusal_metric",
    "run_arms",
    "select_direction",
    "shuffled_labels",
]
