"""Read a finished audit back for a notebook: typed results, the verdict, any figure redrawn.

>>> run = safetyscope.load_audit("runs/demo")
>>> run.results.interventions["ablation"].rate("intervened", "harmful")
>>> run.figure_names()            # ['behavior', 'spectrum', ..., 'backdoor_patching']
>>> fig = run.figure("refusal_by_layer")   # a matplotlib Figure (displays inline in Jupyter)
>>> fig.savefig("refusal.pdf")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from safetyscope.errors import SafetyscopeError
from safetyscope.pipelines.audit_results import AuditResults
from safetyscope.pipelines.sections import Claim

#: The JSON Schema of ``results.json`` shipped with the package.
SCHEMA_PATH = Path(__file__).with_name("audit_schema.json")


@cache
def audit_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``results.json``."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass
class AuditRun:
    """A finished audit folder: its typed results and helpers to redraw its figures."""

    path: Path
    results: AuditResults

    @property
    def verdict(self) -> list[Claim]:
        """The verdict claims, as shown at the top of the report."""
        return self.results.verdict

    @property
    def label(self) -> str:
        """A short name for comparisons: the folder name."""
        return self.path.name

    def specs(self) -> list[dict[str, Any]]:
        """Every figure spec of the report (plain data, :mod:`safetyscope.report.plots`)."""
        from safetyscope.pipelines.audit_page import figure_specs

        return figure_specs(self.results)

    def figure_names(self) -> list[str]:
        """Names of the report's figures (also the file names under ``figures/``)."""
        return [s["name"] for s in self.specs()]

    def spec(self, name: str) -> dict[str, Any]:
        """One figure's spec; edit it (labels, ``ylim``) and pass it to :func:`safetyscope.report.plots.draw`."""
        for s in self.specs():
            if s["name"] == name:
                return s
        raise SafetyscopeError(f"No figure {name!r} in {self.path}; figures: {self.figure_names()}.")

    def figure(self, name: str) -> Any:
        """Redraw one figure as a :class:`matplotlib.figure.Figure`."""
        from safetyscope.report.plots import draw

        return draw(self.spec(name))

    def headline(self) -> dict[str, Any]:
        """The headline numbers (as printed by the CLI)."""
        return self.results.headline()


def load_audit(path: str | Path) -> AuditRun:
    """Load ``path/results.json`` (or a ``results.json`` path) written by ``safetyscope audit``.

    Raises:
        SafetyscopeError: no such file, not JSON, or a newer ``schema_version`` than this package reads.
    """
    p = Path(path)
    file = p if p.is_file() else p / "results.json"
    if not file.is_file():
        raise SafetyscopeError(f"No audit results at {file}. Run `safetyscope audit --out {p}` first.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetyscopeError(f"{file} is not readable JSON ({exc}).") from exc
    if not isinstance(data, dict) or "behavior" not in data or "directions" not in data:
        raise SafetyscopeError(f"{file} is not an audit's results.json (no behavior/directions sections).")
    results = AuditResults.from_dict(data)
    if not results.verdict and data.get("schema_version") is None:  # schema 1: compute the verdict now
        from safetyscope.pipelines.audit_page import compute_verdict

        results.verdict = compute_verdict(results)
    return AuditRun(file.parent, results)
