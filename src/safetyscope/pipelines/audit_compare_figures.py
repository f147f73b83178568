"""The comparison page's headline table and figures (plain specs), one colour per run."""

from __future__ import annotations

from typing import Any

from safetyscope.pipelines.audit_load import AuditRun
from safetyscope.pipelines.sections import pct, rate_series


def headline_table(runs: list[AuditRun], labels: list[str]) -> dict[str, Any]:
    """Rows of headline measures, one column per run (rates with Wilson CIs)."""
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


def compare_figures(runs: list[AuditRun], labels: list[str]) -> list[dict[str, Any]]:
    """Figure specs of the comparison: refusal, own-direction ablation, spectra and refusal by layer per run."""
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
