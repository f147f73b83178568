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
from safetyscope.pipelines.audit_load import AuditRun, load_audit
from safetyscope.pipelines.sections import beats, pct, rate_series

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


def _headline_table(runs: list[AuditRun], labels: list[str]) -> dict[str, Any]:
    rows_spec = [
        ("refusal on harmful", "refusal_harmful"),
        ("refusal on harmless", "refusal_harmless"),
        ("harmful refusal, selected direction ablated", "ablation_harmful"),
        ("  … random-direction control", "ablation_control_harmful"),
        ("harmless refusal, direction added", "addition_harmless"),
        ("  … random-direction control", "addition_control_harmless"),
        ("harmful refusal, orthogonalized", "orthogonalized_harmful"),
        ("backdoor rate with trigger", "backdoor_triggered"),
        ("backdoor rate with control tag", "backdoor_control"),
    ]
    heads = [r.headline() for r in runs]
    rows = [["selected layer", *[str(h.get("best_layer")) for h in heads]]]
    rows += [
        [name, *[pct(h.get(key)) for h in heads]] for name, key in rows_spec if any(key in h for h in heads)
    ]
    return {"header": ["measure (95% Wilson CI)", *labels], "rows": rows}


def _figures(runs: list[AuditRun], labels: list[str]) -> list[dict[str, Any]]:
    beh = [r.results.behavior["refusal"] for r in runs]
    figs: list[dict[str, Any]] = [
        {
            "name": "compare_refusal",
            "kind": "bars",
            "title": "Baseline refusal by run",
            "categories": labels,
            "ylabel": "refusal rate (%)",
            "ylim": [0, 114],
            "series": [
                rate_series("harmful prompts", [b["harmful"] for b in beh]),
                rate_series("harmless prompts (control)", [b["harmless"] for b in beh], "control"),
            ],
            "caption": "Refusal of each run's held-out harmful prompts beside its harmless prompts (the control). "
            "Error bars: 95% Wilson intervals.",
        }
    ]
    heads = [r.headline() for r in runs]
    if all(h.get("ablation_harmful") for h in heads):
        figs.append(
            {
                "name": "compare_ablation",
                "kind": "bars",
                "title": "Ablating each run's own direction",
                "categories": labels,
                "ylabel": "harmful refusal (%)",
                "ylim": [0, 114],
                "series": [
                    rate_series("no intervention", [h["refusal_harmful"] for h in heads], "baseline"),
                    rate_series("own direction ablated", [h["ablation_harmful"] for h in heads]),
                    rate_series(
                        "random direction (control)",
                        [h["ablation_control_harmful"] for h in heads],
                        "control",
                    ),
                ],
                "caption": "Harmful refusal of each run with its own selected direction ablated, beside the "
                "random-direction control. Error bars: 95% Wilson intervals.",
            }
        )
    geo = [(lab, r.results.geometry) for lab, r in zip(labels, runs, strict=True) if r.results.geometry]
    if geo:
        xs = sorted({s["layer"] for _, g in geo for s in g["spectrum"]})
        series = []
        for gi, (lab, g) in enumerate(geo):
            top = {s["layer"]: s["top1"] for s in g["spectrum"]}
            series.append({"label": f"{lab}: top-1 share", "y": [top.get(x) for x in xs], "group": gi})
            ctl = {s["layer"]: s["top1"] for s in g.get("spectrum_control", [])}
            if ctl:
                series.append(
                    {
                        "label": f"{lab}: within-class (control)",
                        "role": "control",
                        "y": [ctl.get(x) for x in xs],
                        "group": gi,
                    }
                )
        figs.append(
            {
                "name": "compare_spectrum",
                "kind": "curves",
                "title": "SVD spectrum by run",
                "x": xs,
                "series": series,
                "xlabel": "layer",
                "ylabel": "top-1 share of σ²",
                "ylim": [0, 1.02],
                "caption": "Share of the paired harmful − harmless differences' energy along the top singular "
                "direction, per layer and run; dashed, same colour: that run's within-class pairs (no contrast).",
            }
        )
    rbl = [
        (lab, r.results.refusal_by_layer)
        for lab, r in zip(labels, runs, strict=True)
        if r.results.refusal_by_layer
    ]
    if rbl:
        xs = sorted({row.layer for _, by in rbl for row in by.layers})
        series = []
        for gi, (lab, by) in enumerate(rbl):
            rows = {row.layer: row for row in by.layers}

            def get(attr: str, i: int | None, rows: dict[int, Any] = rows) -> list[float | None]:
                out = []
                for x in xs:
                    row = rows.get(x)
                    v = getattr(row, attr) if row is not None else None
                    out.append(v if i is None or v is None else v[i])
                return out

            series.append(
                {
                    "label": f"{lab}: DIM ablated",
                    "y": get("ablated", None),
                    "low": get("ablated_ci", 0),
                    "high": get("ablated_ci", 1),
                    "group": gi,
                }
            )
            series.append(
                {
                    "label": f"{lab}: random (control)",
                    "role": "control",
                    "y": get("control", None),
                    "low": get("control_ci", 0),
                    "high": get("control_ci", 1),
                    "group": gi,
                }
            )
        figs.append(
            {
                "name": "compare_refusal_by_layer",
                "kind": "curves",
                "title": "Refusal by layer by run",
                "x": xs,
                "series": series,
                "xlabel": "layer whose direction is ablated",
                "ylabel": "refusal log-odds",
                "caption": "Mean refusal log-odds of each run's held-out harmful prompts with its own "
                "difference-in-means direction of each layer ablated (band: 95% interval of the "
                "mean), beside a random direction of equal norm.",
            }
        )
    return figs


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
                "tables": [_headline_table(runs, labels)],
                "figures": _figures(runs, labels),
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
