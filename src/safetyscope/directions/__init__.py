"""Directions in the residual stream: extraction methods, results, contrast activations, geometry."""

from safetyscope.directions.checks import DirectionError, check_direction, check_scalar, check_vector
from safetyscope.directions.contrast import Contrast, collect_contrast, stacked
from safetyscope.directions.covariance import ShrunkCovariance, ledoit_wolf_shrinkage, shrunk_covariance
from safetyscope.directions.direction import Direction, DirectionSet
from safetyscope.directions.extract import METHODS, RawDirection, extract, register_method
from safetyscope.directions.logistic import LogisticFit, fit_logistic

__all__ = [
    "METHODS",
    "Contrast",
    "Direction",
    "DirectionError",
    "DirectionSet",
    "LogisticFit",
    "RawDirection",
    "ShrunkCovariance",
    "check_direction",
    "check_scalar",
    "check_vector",
    "collect_contrast",
    "extract",
    "fit_logistic",
    "ledoit_wolf_shrinkage",
    "register_method",
    "shrunk_covariance",
    "stacked",
]
