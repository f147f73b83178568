"""From typed audit results to the report page (plain data for :mod:`safetyscope.report`).

Each section that ran contributes its body (paragraphs, tables) and figure specs; the verdict
block at the top is the claims stored in ``results.verdict`` (computed by the sections' rules).
"""

from __future__ import annotations

import json
from typing import Any

from safetyscope.pipelines.audit_results import AuditResults
from safetyscope.pipelines.sections import Claim, registry


def compute_verdict(results: AuditResults) -> list[Claim]:
    """Every ran section's verdict rule applied to ``results``, in section order."""
    out: list[Claim] = []
    for name, section in registry().items():
        if name in results.sections and results.section(name) is not None:
            out += section.verdict(results)
    return out


def figure_specs(results: AuditResults) -> list[dict[str, Any]]:
    """Every figure spec of the sections that ran (each has a unique ``name``)."""
    specs: list[dict[str, Any]] = []
    for name, section in registry().items():
        if name in results.sections and results.section(name) is not None:
            specs += section.figures(results)
    return specs


def audit_page(results: AuditResults) -> dict[str, Any]:
    """The report page: title, provenance line, verdict, one block per section, appendix."""
    p = results.provenance
    sections = []
    for name, section in registry().items():
        if name not in results.sections or results.section(name) is None:
            continue
        body = section.body(results)
        sections.append(
            {
                "id": name,
                "title": section.title,
                "paragraphs": body.get("paragraphs", []),
                "tables": body.get("tables", []),
                "figures": section.figures(results),
            }
        )
    off = [n for n in registry() if n not in results.sections]
    timings = [
        [k, f"{v['seconds']:.1f}", "cached" if v.get("cached") else ""] for k, v in results.timings.items()
    ]
    subtitle = (
        f"{p.get('n_layers')} layers, d_model {p.get('d_model')}; prompts: {p.get('prompts')}; judge: "
        f"{p.get('judge')}; safetyscope {p.get('safetyscope_version')}; results schema "
        f"{results.schema_version}." + (f" Sections turned off: {', '.join(off)}." if off else "")
    )
    return {
        "title": f"safetyscope audit — {p.get('model')}",
        "subtitle": subtitle,
        "verdict": [c.to_dict() for c in results.verdict],
        "sections": sections,
        "appendix": [
            {
                "id": "timings",
                "title": "Timings",
                "tables": [{"header": ["step", "seconds", ""], "rows": timings}],
            },
            {"id": "provenance", "title": "Provenance", "pre": json.dumps(p, indent=2)},
        ],
    }
