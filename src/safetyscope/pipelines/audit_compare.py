"""``safetyscope audit compare``: several audits side by side on one page.

The page puts each run's headline numbers, verdict, SVD spectrum and refusal-by-layer curve
beside the others', after a comparability check: the same prompts (manifest prompt hash), judge,
trigger, sizes (``n_test``, ``max_new_tokens``, ``seed``) and analysed layers, or it says which
differ. Cross-run rule **C1**: a run's harmful (harmless) refusal differs from the first run's
(the reference) when their 95% Wilson intervals do not overlap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetyscope.errors import SafetyscopeError
from safetyscope.pipelines.audit_compare_figures import compare_figures, headline_table
from safetyscope.pipelines.audit_load import AuditRun, load_audit
from safetyscope.pipelines.sections import beats, pct

#: Configuration keys that must match for rates to be compared directly.
CONFIG_KEYS = ("n_test", "max_new_tokens", "seed", "n_backdoor")


@dataclass
class Check:
    """One comparability check: what, whether every run agrees, and the values when they do not."""

    name: str
    same: bool
    values: dict[str, Any]


def _labels(runs: list[AuditRun]) -> list[str]:
    out: list[str] = []
    for i, r in enumerate(runs):
        label = r.label
        out.append(label if label not in out else f"{label} ({i + 1})")
    return out


def comparability(runs: list[AuditRun], labels: list[str]) -> list[Check]:
    """Same prompts, judge, trigger, sizes, layers and model shape? One :class:`Check` each."""

    def prov(r: AuditRun) -> dict[str, Any]:
        return r.results.provenance

    getters = {
        "prompts (hash of every split)": lambda r: (prov(r).get("manifest") or {}).get("prompts"),
        "prompt source": lambda r: prov(r).get("prompts"),
        "judge": lambda r: prov(r).get("judge"),
        "trigger / control tag": lambda r: f"{prov(r).get('trigger')} / {prov(r).get('control_trigger')}",
        "sizes (" + ", ".join(CONFIG_KEYS) + ")": lambda r: ", ".join(
            str((prov(r).get("config") or {}).get(k)) for k in CONFIG_KEYS
        ),
        "analysed layers": lambda r: str(prov(r).get("layers")),
        "model shape (layers x d_model)": lambda r: f"{prov(r).get('n_layers')} x {prov(r).get('d_model')}",
        "sections": lambda r: ", ".join(r.results.sections),
        "results schema": lambda r: r.results.schema_version,
    }
    checks = []
    for name, get in getters.items():
        vals = {lab: get(r) for lab, r in zip(labels, runs, strict=True)}
        checks.append(
            Check(name, len({json.dumps(v, sort_keys=True, default=str) for v in vals.values()}) == 1, vals)
        )
    return checks


def _claims(runs: list[AuditRun], labels: list[str], checks: list[Check]) -> list[dict[str, Any]]:
    ref, ref_label = runs[0].results.behavior["refusal"], labels[0]
    same_setup = all(c.same for c in checks[:5])
    out = []
    if not same_setup:
        bad = [c.name for c in checks[:5] if not c.same]
        out.append(
            {
                "text": f"The runs differ in {', '.join(bad)}: rates below are not directly comparable.",
                "status": "exploratory",
                "section": "comparability",
            }
        )
    for run, label in zip(runs[1:], labels[1:], strict=True):
        b = run.results.behavior["refusal"]
        for ps in ("harmful", "harmless"):
            lower, higher = beats(b[ps], ref[ps], "lower"), beats(b[ps], ref[ps], "higher")
            word = "lower than" if lower else "higher than" if higher else "indistinguishable from"
            status = ("finding" if (lower or higher) else "non-finding") if same_setup else "exploratory"
            out.append(
                {
                    "text": f"{label}: refusal on {ps} prompts {pct(b[ps])} is {word} {ref_label}'s "
                    f"{pct(ref[ps])} (rule C1).",
                    "status": status,
                    "section": "headline",
                    "figure": "compare_refusal",
                }
            )
    return out


def compare_page(runs: list[AuditRun], labels: list[str]) -> dict[str, Any]:
    """The comparison page (plain data for :mod:`safetyscope.report.html`)."""
    checks = comparability(runs, labels)
    check_rows = [
        [
            c.name,
            "same" if c.same else "DIFFERENT",
            str(next(iter(c.values.values())))
            if c.same
            else "; ".join(f"{k}: {v}" for k, v in c.values.items()),
        ]
        for c in checks
    ]
    verdict_rows = [
        [lab, c.status, c.rule, c.text] for lab, r in zip(labels, runs, strict=True) for c in r.verdict
    ]
    return {
        "title": f"safetyscope audit comparison — {', '.join(labels)}",
        "subtitle": "Runs: "
        + "; ".join(
            f"{lab} = {r.path} ({r.results.provenance.get('model')})"
            for lab, r in zip(labels, runs, strict=True)
        )
        + f". Reference: {labels[0]}.",
        "verdict": _claims(runs, labels, checks),
        "sections": [
            {
                "id": "comparability",
                "title": "Comparability",
                "tables": [{"header": ["check", "", "value(s)"], "rows": check_rows}],
            },
            {
                "id": "headline",
                "title": "Headline numbers",
                "tables": [headline_table(runs, labels)],
                "figures": compare_figures(runs, labels),
            },
            {
                "id": "verdicts",
                "title": "Each run's verdict",
                "tables": [{"header": ["run", "status", "rule", "claim"], "rows": verdict_rows}],
            },
        ],
        "appendix": [
            {
                "id": "cross",
                "title": "Cross-model ablation",
                "paragraphs": [
                    "Not computed: applying each run's direction to the other models needs the "
                    "robustness matrix of the safety-training work, which has not landed."
                ],
            }
        ],
    }


@dataclass
class CompareResult:
    """Where the comparison page went, and its checks and cross-run claims."""

    report: Path
    labels: list[str]
    checks: list[Check]
    verdict: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (paths as strings)."""
        return {
            "report": str(self.report),
            "labels": self.labels,
            "checks": [asdict(c) for c in self.checks],
            "verdict": self.verdict,
        }


def compare_audits(run_dirs: list[Path], out: Path, *, force: bool = False) -> CompareResult:
    """Write ``out/compare.html`` (figures also to ``out/figures/``) and ``out/compare.json``."""
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.report.html import write_report

    if len(run_dirs) < 2:
        raise SafetyscopeError("audit compare needs at least two audit folders.")
    runs = [load_audit(p) for p in run_dirs]
    check_output(out, force=force, kind="dir", inputs=[str(p) for p in run_dirs])
    labels = _labels(runs)
    page = compare_page(runs, labels)
    if out.exists() and any(out.iterdir()):  # check_output allowed it: --force on a folder of ours
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    report = write_report(page, out / "compare.html", out / "figures")
    result = CompareResult(report, labels, comparability(runs, labels), page["verdict"])
    with atomic_file(out / "compare.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return result
