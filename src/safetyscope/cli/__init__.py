"""The ``safetyscope`` command line: a thin typer layer over the Python API.

Each command parses options, calls one API function or pipeline, and prints a summary.
User errors (:class:`~safetyscope.errors.SafetyscopeError`) are printed without a traceback
and exit with status 2. Commands live in topic modules that register on one typer ``app``.
"""

from safetyscope.cli import (
    analysis,
    attribute,
    audit,
    geometry_studies,
    interop,
    interventions,
    models,
    patching,
    robustness,
    robustness_front,
    sae,
    train,
    transfer,
)
from safetyscope.cli._app import app

__all__ = [
    "analysis",
    "app",
    "attribute",
    "audit",
    "geometry_studies",
    "interop",
    "interventions",
    "main",
    "models",
    "patching",
    "robustness",
    "robustness_front",
    "sae",
    "train",
    "transfer",
]


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m safetyscope``."""
    app()
