"""Interventions: steering, ablation, affine editing, CAST, patching, weight orthogonalization.

All hook interventions are built on :func:`safetyscope.activations.edit` and write at
:class:`~safetyscope.activations.Site` s; a Direction is written back at the site it was read at.
"""

from safetyscope.interventions.cast_search import (
    ConditionSearch,
    Rule,
    best_threshold,
    cast_any,
    condition_vector,
    pooled_activations,
    search_condition,
)
from safetyscope.interventions.conditional import (
    CastState,
    Condition,
    Threshold,
    cast,
    fit_condition,
    fit_threshold,
)
from safetyscope.interventions.gabliteration import (
    GabliterationPlan,
    LayerPlan,
    gabliterate,
    plan_from_activations,
    plan_gabliteration,
    plan_shared,
)
from safetyscope.interventions.hooks import (
    InterventionError,
    SiteSpec,
    ablate,
    add,
    affine_edit,
    check_width,
    compose,
    orthonormal,
    project_out,
    resolve_sites,
    writer_sites,
)
from safetyscope.interventions.kernel import kernel_ablate, linear_kernel
from safetyscope.interventions.patching import patch
from safetyscope.interventions.weights import orthogonalize, orthogonalize_layers, parse_components

__all__ = [
    "CastState",
    "Condition",
    "ConditionSearch",
    "GabliterationPlan",
    "InterventionError",
    "LayerPlan",
    "Rule",
    "SiteSpec",
    "Threshold",
    "ablate",
    "add",
    "affine_edit",
    "best_threshold",
    "cast",
    "cast_any",
    "check_width",
    "compose",
    "condition_vector",
    "fit_condition",
    "fit_threshold",
    "gabliterate",
    "kernel_ablate",
    "linear_kernel",
    "orthogonalize",
    "orthogonalize_layers",
    "orthonormal",
    "parse_components",
    "patch",
    "plan_from_activations",
    "plan_gabliteration",
    "plan_shared",
    "pooled_activations",
    "project_out",
    "resolve_sites",
    "search_condition",
    "writer_sites",
]
