"""Section ``discrepancy``: predict-control discrepancy of the probe, difference-in-means and causally
selected directions by layer (compendium 4.7; :mod:`safetyscope.causal.discrepancy`). Off under ``--quick``.

Verdict rules: **P1** the claim "good at altering = worse at classifying" is supported at a layer
where the best classifier (highest held-out AUC, ties by d′) controls refusal less than the best
controller (largest mean of ablation drop and induced refusal), with their 95% Wilson intervals
apart (ablated harmful refusal or induced harmless refusal); not supported where the best
classifier is among the best controllers or the intervals overlap. The claim also lists the
directions whose ablation puts harmful refusal's interval below the random equal-norm control's.
**P2** Spearman's ρ between d′ and control effect over all (direction, layer) points, as a point
estimate (exploratory: a handful of points, no interval). Both are exploratory when the model does
not refuse (rule B1).
"""

from __future__ import annotations

from typing import Any

from safetyscope.causal.discrepancy import DIRECTIONS, DiscrepancyReport, predict_control
from safetyscope.pipelines.sections.base import Claim, Section, beats, pct, rate_series


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    def step(tick: Any) -> tuple[dict[str, Any], None]:
        p, cfg = ctx.prompts, ctx.config
        rep = predict_control(
            ctx.lm,
            p.harmful_train,
            p.harmless_train,
            p.harmful_val,
            p.harmless_val,
            p.harmful_test,
            p.harmless_test,
            ctx.judge,
            layers=ctx.layers,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            baseline=ctx.baseline,
            progress=tick,
        )
        return rep.to_dict(), None

    return steps.run("discrepancy", "predict-control discrepancy", step, total=len(ctx.layers))


def _rate(r: Any) -> dict[str, Any]:
    return r.to_dict()


def _verdict(r: Any) -> list[Claim]:
    from safetyscope.pipelines.sections.behavior import refuses

    rep: DiscrepancyReport | None = r.section("discrepancy")
    if rep is None or not rep.layers:
        return []
    valid = refuses(r)
    out = []
    split, same = [], []
    for row in rep.layers:
        cls, ctl = rep.best_classifier(row), "/".join(rep.best_controllers(row))
        if rep.supports_claim(row):
            split.append(f"{row.layer} ({cls} classifies best, {ctl} controls best)")
        else:
            same.append(
                f"{row.layer} ({cls} classifies best; best controllers {ctl}; no difference beyond the CIs)"
            )
    controls = [
        f"{n}@{row.layer}"
        for row in rep.layers
        for n in DIRECTIONS
        if beats(_rate(row.scores[n].ablated_refusal), _rate(row.scores["random"].ablated_refusal), "lower")
    ]
    text = (
        f"Predict vs control: the best classifier controls refusal less than the best controller (95% CIs "
        f"apart) at layer(s) "
        f"{'; '.join(split) or 'none'}; not at layer(s) {'; '.join(same) or 'none'}. "
        f"Directions whose ablation lowers harmful refusal beyond the random control: "
        f"{', '.join(controls) or 'none'}. Paper: {rep.paper_claim}"
    )
    status = "finding" if split else "non-finding"
    out.append(Claim(text, status if valid else "exploratory", "discrepancy", "P1", "discrepancy_control"))
    if rep.spearman is not None:
        out.append(
            Claim(
                f"Spearman rho between classification (d′ of the projection) and control over directions x layers: "
                f"{rep.spearman:+.2f} (the paper's claim predicts a negative value; few points, no "
                "interval).",
                "exploratory",
                "discrepancy",
                "P2",
                "discrepancy_auc",
            )
        )
    return out


def _figures(r: Any) -> list[dict[str, Any]]:
    rep: DiscrepancyReport | None = r.section("discrepancy")
    if rep is None or not rep.layers:
        return []
    x = [row.layer for row in rep.layers]
    names = [*DIRECTIONS, "random"]

    def role(n: str) -> str:
        return "control" if n == "random" else "effect"

    auc = {
        "name": "discrepancy_auc",
        "kind": "curves",
        "title": "Classification: held-out AUC of the projection",
        "x": x,
        "xlabel": "layer",
        "ylabel": "AUC",
        "ylim": [0, 1.02],
        "series": [
            {
                "label": n + (" (control)" if n == "random" else ""),
                "role": role(n),
                "y": [row.scores[n].auc for row in rep.layers],
            }
            for n in names
        ],
        "caption": "Held-out ROC AUC of each unit direction's projection (harmful vs harmless test prompts, "
        "resid_pre at the last end-of-instruction token). Control: a random direction.",
    }
    abl = {
        "name": "discrepancy_control",
        "kind": "curves",
        "title": "Control: harmful refusal with the direction ablated",
        "x": x,
        "xlabel": "layer",
        "ylabel": "harmful refusal (%)",
        "ylim": [0, 102],
        "series": [
            rate_series(
                n + (" (control)" if n == "random" else ""),
                [_rate(row.scores[n].ablated_refusal) for row in rep.layers],
                role(n),
            )
            for n in names
        ],
        "caption": f"Refusal on held-out harmful prompts with each direction ablated from every residual write "
        f"(baseline {pct(_rate(rep.baseline_harmful))}; band: 95% Wilson interval). Control: a random "
        "direction.",
    }
    ind = {
        "name": "discrepancy_induce",
        "kind": "curves",
        "title": "Control: harmless refusal with the direction added",
        "x": x,
        "xlabel": "layer",
        "ylabel": "harmless refusal (%)",
        "ylim": [0, 102],
        "series": [
            rate_series(
                n + (" (control)" if n == "random" else ""),
                [_rate(row.scores[n].induced_refusal) for row in rep.layers],
                role(n),
            )
            for n in names
        ],
        "caption": f"Refusal on held-out harmless prompts with each direction added at the layer at the "
        f"difference-in-means norm (baseline {pct(_rate(rep.baseline_harmless))}). Control: a random "
        "direction of the same norm.",
    }
    return [auc, abl, ind]


def _body(r: Any) -> dict[str, Any]:
    rep: DiscrepancyReport | None = r.section("discrepancy")
    if rep is None:
        return {}
    rows = []
    for row in rep.layers:
        for n in (*DIRECTIONS, "random"):
            s = row.scores[n]
            rows.append(
                [
                    str(row.layer),
                    n + (f" (eoi {row.selected_position})" if n == "selected" else ""),
                    f"{s.auc:.3f} (d′ {s.dprime:.2f})",
                    pct(_rate(s.ablated_refusal)),
                    pct(_rate(s.induced_refusal)),
                    ", ".join(f"{k} {v:+.2f}" for k, v in row.cosines.items()) if n == "probe" else "",
                ]
            )
    ours = (
        f"Ours: Spearman rho(d′, control) = {rep.spearman:+.2f}."
        if rep.spearman is not None
        else "Ours: no rank correlation (constant AUC or control)."
    )
    return {
        "paragraphs": [f"Paper: {rep.paper_claim}", ours],
        "tables": [
            {
                "header": [
                    "layer",
                    "direction",
                    "AUC (d′)",
                    "harmful refusal, ablated",
                    "harmless refusal, added",
                    "cosines",
                ],
                "rows": rows,
                "caption": f"Baselines: harmful {pct(_rate(rep.baseline_harmful))}, harmless "
                f"{pct(_rate(rep.baseline_harmless))}.",
            }
        ],
    }


SECTION = Section(
    "discrepancy",
    "Predict vs control: probe, difference-in-means and selected directions",
    55,
    _run,
    DiscrepancyReport,
    _figures,
    _verdict,
    _body,
    requires=("directions",),
    quick=False,
    description="per-layer cosines, classification AUC and control (ablation, addition) of three directions",
    controls="random direction of equal norm for AUC, ablation and addition",
)
