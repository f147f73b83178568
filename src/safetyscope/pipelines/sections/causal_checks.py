"""Section ``causal_checks`` (optional, off under ``--quick``): backup behaviour and one subspace-illusion
check on the held-out harmful prompts (docs/causal-checks.md).

* backup: mean-ablate the two components (attention / MLP outputs) with the largest single-ablation
  effect on the refusal log-odds; the compensated share beside the same share after ablating two
  random components (control).
* illusion: the harmful-minus-harmless mean-difference direction in the middle analysed layer's MLP
  hidden space, patched from harmful into harmless prompts at the last token, split into the part
  the down projection reads and the part it ignores; beside the whole-MLP patch and a random direction.

Verdict rules: **CC1** (finding) backup behaviour when the compensated share is ≥ 0.2 and at least
twice the control's; **CC2** (finding) the illusion signature (null-space share > 0.5 with a dormant
row-space pathway), else a non-finding that the direction's effect goes through what the MLP reads.
"""

from __future__ import annotations

from typing import Any

from safetyscope.pipelines.sections.base import Claim, Section

#: Prompts per side used by the section.
N_PROMPTS = 16


def _compute(ctx: Any, tick: Any) -> tuple[dict[str, Any], None]:
    from safetyscope.causal import make_metric
    from safetyscope.causal.backup import backup_behaviour
    from safetyscope.causal.illusion import illusion_check

    met = make_metric("refusal", ctx.lm.tokenizer)
    harmful, harmless = ctx.prompts.harmful_test[:N_PROMPTS], ctx.prompts.harmless_test[:N_PROMPTS]
    n = min(len(harmful), len(harmless))
    b = backup_behaviour(ctx.lm, harmful, met, k=2)
    tick(1)
    layer = ctx.layers[len(ctx.layers) // 2]
    ill = illusion_check(ctx.lm, harmful[:n], harmless[:n], met, layer=layer)
    tick(1)
    return {"backup": b.to_dict(), "illusion": ill.to_dict()}, None


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    return steps.run("causal_checks", "backup behaviour and illusion check", lambda t: _compute(ctx, t), 2)


def _verdict(r: Any) -> list[Claim]:
    res = r.section("causal_checks")
    if not res:
        return []
    b, ill = res["backup"], res["illusion"]
    share, ctrl = b.get("compensated_share"), (b.get("control") or {}).get("compensated_share")
    found = share is not None and share >= 0.2 and (ctrl is None or share >= 2 * ctrl)
    claims = [
        Claim(
            f"Ablating {', '.join(b['ablated'])} moves refusal log-odds by {b['total_effect']:+.2f}; the remaining "
            f"components compensate {share if share is None else f'{share:.0%}'} of it (random-ablation control: "
            f"{ctrl if ctrl is None else f'{ctrl:.0%}'})"
            + (": backup behaviour, ablation understates them." if found else "."),
            "finding" if found else "non-finding",
            "causal_checks",
            "CC1",
            "causal_checks_backup",
        )
    ]
    rec = ill["recovery"]
    fmt = {k: "n/a" if v is None else f"{v:.2f}" for k, v in rec.items()}
    claims.append(
        Claim(
            f"Patching the harmful-minus-harmless direction in {ill['site']} recovers {fmt['full']} of the refusal gap "
            f"(row-space part {fmt['row']}, null-space part {fmt['null']}, whole MLP {fmt['component']}, random "
            f"direction {fmt['random']})"
            + (
                f": the illusion signature (null-space share {ill['null_share']:.2f}, dormant pathway)."
                if ill["illusion"]
                else "; no illusion signature."
            ),
            "finding" if ill["illusion"] else "non-finding",
            "causal_checks",
            "CC2",
            "causal_checks_illusion",
        )
    )
    return claims


def _figures(r: Any) -> list[dict[str, Any]]:
    res = r.section("causal_checks")
    if not res:
        return []
    b, ill = res["backup"], res["illusion"]
    names = ["direction", "row part", "null part", "whole MLP", "random"]
    keys = ["full", "row", "null", "component", "random"]
    return [
        {
            "name": "causal_checks_backup",
            "kind": "curves",
            "title": "Direct effects before and after ablation",
            "x": b["components"],
            "xlabel": "component",
            "ylabel": "direct effect on refusal log-odds",
            "series": [
                {"label": "before (DE0)", "role": "baseline", "y": b["de_before"]},
                {"label": f"after ablating {', '.join(b['ablated'])} (DE1)", "y": b["de_after"]},
            ],
            "caption": "Backup behaviour: each component's direct effect on the refusal log-odds before and after the "
            "top components are mean-ablated. Curves rising downstream are compensation; the control "
            "(two random components ablated) is in the verdict.",
        },
        {
            "name": "causal_checks_illusion",
            "kind": "bars",
            "title": f"Subspace patch in {ill['site']}",
            "categories": names,
            "ylabel": "recovery (0 = harmless, 1 = harmful)",
            "series": [
                {"label": "recovery", "y": [ill["recovery"][k] for k in keys[:4]] + [None]},
                {
                    "label": "random direction (control)",
                    "role": "control",
                    "y": [None] * 4 + [ill["recovery"]["random"]],
                },
            ],
            "caption": "Illusion check: recovery of the refusal score when the mean-difference direction, its "
            "row-space and null-space parts, the whole MLP hidden activation, or a random direction "
            "(control) is patched from harmful into harmless prompts at the last token.",
        },
    ]


SECTION = Section(
    "causal_checks",
    "Backup behaviour and the subspace illusion",
    75,
    _run,
    None,
    _figures,
    _verdict,
    quick=False,
    description="Backup behaviour (Hydra effect) and one subspace-illusion check.",
    controls="random-component ablation; random direction patch",
)
