"""Section ``directions`` (core): activations, directions per method and layer, causal selection.

Verdict rule **S1**: when no candidate passes selection's filters (``best.fallback``), the
middle layer's difference in means is used and every intervention claim is exploratory.
"""

from __future__ import annotations

from typing import Any

from safetyscope.pipelines.sections.base import Claim, Section


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    from safetyscope.pipelines.audit_steps import step_activations, step_directions

    steps.run("activations", "activations at end-of-instruction", lambda t: step_activations(ctx, t), 2)
    acts = steps.tensors("activations")
    return steps.run(
        "directions",
        "directions and selection",
        lambda t: step_directions(ctx, acts, t),
        len(ctx.config.methods) + 1,
    )


def _verdict(r: Any) -> list[Claim]:
    best = r.directions["best"]
    if best.get("fallback"):
        return [
            Claim(
                f"No candidate direction passed causal selection (bypass, induce, KL filters); the difference "
                f"in means at layer {best['layer']} stands in, so intervention results are exploratory.",
                "exploratory",
                "directions",
                "S1",
            )
        ]
    return []


def _body(r: Any) -> dict[str, Any]:
    d = r.directions
    best = d["best"]
    paras = [
        f"Selected direction: layer {best['layer']} ({best.get('site', '')}), end-of-instruction position "
        f"{best.get('position')}, difference-in-means norm {best.get('raw_norm', float('nan')):.3g}."
    ]
    if best.get("fallback"):
        paras.append(str(d.get("selection", {}).get("error", "")))
    cands = (d.get("selection") or {}).get("candidates") or []

    def f(v: Any) -> str:
        return "—" if v is None else f"{v:.3g}"

    rows = [
        [
            str(c["layer"]),
            str(c["position"]),
            f(c.get("bypass")),
            f(c.get("induce")),
            f(c.get("kl")),
            "yes" if c.get("eligible") else (c.get("reason") or "no"),
        ]
        for c in cands[:6]
    ]
    tables = (
        [
            {
                "header": ["layer", "position", "bypass", "induce", "KL", "eligible"],
                "rows": rows,
                "caption": "Causal selection, best candidates first (bypass: refusal score on harmful validation "
                "prompts with the direction ablated; induce: on harmless with it added)",
            }
        ]
        if rows
        else []
    )
    return {"paragraphs": paras, "tables": tables}


SECTION = Section(
    "directions",
    "Refusal direction and selection",
    20,
    _run,
    None,
    verdict=_verdict,
    body=_body,
    core=True,
    description="directions per method and layer; causal selection of the best one",
)
