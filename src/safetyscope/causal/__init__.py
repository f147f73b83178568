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
from safetyscope.causal.cosmic import (
    COSMIC_MODES,
    CosmicCandidate,
    CosmicSelection,
    rank_cosmic,
    select_cosmic,
)
from safetyscope.causal.discrepancy import DiscrepancyReport, LayerDiscrepancy, predict_control
from safetyscope.causal.edit_compare import EditComparison, EditRow, compare_edits, components_from_patching
from safetyscope.causal.front import FrontObjective, FrontParams, KernelParams, TrialScore, pareto_mask
from safetyscope.causal.front_result import FrontCheck, RobustnessFront
from safetyscope.causal.patch_spec import COMPONENTS, MODES, PatchingError, PatchTarget
from safetyscope.causal.patching import patching_sweep
from safetyscope.causal.patching_compare import (
    CorruptionStudy,
    MapComparison,
    compare_maps,
    corruption_study,
    spearman,
)
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
from safetyscope.causal.str_corrupt import Replacement, load_words, str_corrupt
from safetyscope.causal.writers import direction_writers

__all__ = [
    "COMPONENTS",
    "CORRUPTIONS",
    "COSMIC_MODES",
    "METRICS",
    "MODES",
    "SELECTION_MODES",
    "Arm",
    "ArmResult",
    "BaselineCache",
    "Candidate",
    "Corruption",
    "CorruptionStudy",
    "CosmicCandidate",
    "CosmicSelection",
    "DiscrepancyReport",
    "EditComparison",
    "EditRow",
    "EditScore",
    "FrontCheck",
    "FrontObjective",
    "FrontParams",
    "InterventionReport",
    "KernelParams",
    "LayerDiscrepancy",
    "MapComparison",
    "MetricUnderEdits",
    "PatchMetric",
    "PatchScore",
    "PatchTarget",
    "PatchingError",
    "PatchingResult",
    "Replacement",
    "RobustnessFront",
    "Selection",
    "SelectionError",
    "TrialScore",
    "candidate_directions",
    "compare_edits",
    "compare_maps",
    "components_from_patching",
    "corruption_study",
    "direction_arms",
    "direction_writers",
    "gaussian_noise",
    "load_words",
    "make_metric",
    "mean_ablation",
    "measure",
    "normalised_recovery",
    "pareto_mask",
    "patching_sweep",
    "predict_control",
    "random_like",
    "rank_candidates",
    "rank_cosmic",
    "refusal_metric",
    "run_arms",
    "select_cosmic",
    "select_direction",
    "shuffled_labels",
    "spearman",
    "str_corrupt",
]
