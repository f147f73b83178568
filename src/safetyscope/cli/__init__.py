"""The ``safetyscope`` command line: a thin typer layer over the Python API.

Each command parses options, calls one API function or pipeline, and prints a summary.
User errors (:class:`~safetyscope.errors.SafetyscopeError`) are printed without a traceback
and exit with status 2. Commands live in topic modules that register on one typer ``app``.
"""

from safetyscope.cli import (
    analysis,
    attribute,
    audit,
    causal_checks,
    geometry_studies,
    interop,
    interventions,
    lens,
    lens_decode,
    models,
    patching,
    readouts,
    robustness,
    robustness_front,
    sae,
    train,
    transcoders,
    transfer,
)
from safetyscope.cli._app import app

__all__ = [
    "analysis",
    "app",
    "attribute",
    "audit",
    "causal_checks",
    "geometry_studies",
    "interop",
    "interventions",
    "lens",
    "lens_decode",
    "main",
    "models",
    "patching",
    "readouts",
    "robustness",
    "robustness_front",
    "sae",
    "train",
    "transcoders",
    "transfer",
]


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m safetyscope``."""
    app()
