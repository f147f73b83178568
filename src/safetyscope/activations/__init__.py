"""Residual-stream activations: sites, hooks, batched collection, streaming statistics, cache."""

from safetyscope.activations.collect import NonFiniteActivationError, collect
from safetyscope.activations.hooks import (
    RowBlock,
    SiteEdit,
    edit,
    enter_on_rows,
    only_rows,
    record,
    routes_by_rows,
)
from safetyscope.activations.result import ActivationResult
from safetyscope.activations.sites import (
    HEAD_POINTS,
    HIDDEN_POINTS,
    SITE_POINTS,
    STREAM_POINTS,
    Positions,
    Site,
    parse_layers,
)
from safetyscope.activations.stats import RunningMoments

__all__ = [
    "HEAD_POINTS",
    "HIDDEN_POINTS",
    "SITE_POINTS",
    "STREAM_POINTS",
    "ActivationResult",
    "NonFiniteActivationError",
    "Positions",
    "RowBlock",
    "RunningMoments",
    "Site",
    "SiteEdit",
    "collect",
    "edit",
    "enter_on_rows",
    "only_rows",
    "parse_layers",
    "record",
    "routes_by_rows",
]
