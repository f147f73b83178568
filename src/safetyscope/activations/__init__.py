"""Residual-stream activations: sites, hooks, batched collection, streaming statistics, cache."""

from safetyscope.activations.collect import NonFiniteActivationError, collect
from safetyscope.activations.hooks import RowBlock, SiteEdit, edit, only_rows, record
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
    "only_rows",
    "parse_layers",
    "record",
]
