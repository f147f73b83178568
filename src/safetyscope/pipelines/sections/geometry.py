"""Section ``geometry``: SVD spectra, linear probes, logit lens and direction cosines per layer.

Verdict rules: **G1** harmful vs harmless is linearly readable from the first layer where the
held-out probe accuracy's 95% interval lies above the shuffled-label control's; **G2** the
contrast is one-dimensional at the selected layer if the top singular direction carries at least
half of the paired differences' energy and at least twice the within-class control's share
(a point estimate: no interval).
"""

from __future__ import annotations

import math
from typing import Any

from safetyscope.pipelines.sections.base import Claim, Section


def _run(ctx: Any, steps: Any, state: dict[str, Any]) -> dict[str, Any]:
    from safetyscope.pipelines.audit_steps import step_geometry

    acts, dirs = steps.tensors("activations"), steps.tensors("directions")
    return steps.run(
        "geometry", "geometry: spectra, probes, lens", lambda t: step_geometry(ctx, acts, dirs, t), 4
    )


def _verdict(r: Any) -> list[Claim]:
    g, out = r.geometry, []
    probes = g["probes"]["layers"]
    readable = [
        p
        for p in probes
        if p.get("accuracy_ci") and p.get("control_ci") and p["accuracy_ci"][0] > p["control_ci"][1]
    ]
    if readable:
        p = readable[0]
        out.append(
            Claim(
                f"Harmful and harmless prompts are linearly separable from layer {p['layer']} on (held-out "
                f"probe accuracy {p['accuracy']:.2f}, shuffled-label control {p['control_accuracy']:.2f}).",
                "finding",
                "geometry",
                "G1",
                "probes",
            )
        )
    elif probes:
        out.append(
            Claim(
                "No layer's probe beats its shuffled-label control.",
                "non-finding",
                "geometry",
                "G1",
                "probes",
            )
        )
    best = r.directions["best"]["layer"]
    spec = {s["layer"]: s for s in g["spectrum"]}
    ctl = {s["layer"]: s for s in g.get("spectrum_control", [])}
    if best in spec and best in ctl:
        t1, c1 = spec[best]["top1"], ctl[best]["top1"]
        ok = t1 >= 0.5 and t1 >= 2 * c1
        text = (
            f"At layer {best} the top singular direction carries {100 * t1:.0f}% of the paired harmful − harmless "
            f"differences' energy (within-class pairs, the control: {100 * c1:.0f}%)"
        )
        out.append(
            Claim(
                text
                + (
                    ": the contrast is essentially one-dimensional."
                    if ok
                    else ": not concentrated in one direction."
                ),
                "finding" if ok else "non-finding",
                "geometry",
                "G2",
                "spectrum",
            )
        )
    return out


def _figures(r: Any) -> list[dict[str, Any]]:
    g = r.geometry
    n_val = int((r.provenance.get("config") or {}).get("n_val") or 0)
    sp, ctl = g["spectrum"], g.get("spectrum_control", [])
    series = [
        {"label": "top-1 share", "y": [s["top1"] for s in sp]},
        {"label": "top-2 share", "y": [s["top2"] for s in sp]},
    ]
    if ctl:
        series.append(
            {
                "label": "top-1 share, within-class pairs (control)",
                "role": "control",
                "y": [s["top1"] for s in ctl],
            }
        )
    figs: list[dict[str, Any]] = [
        {
            "name": "spectrum",
            "kind": "curves",
            "title": "SVD spectrum of paired differences",
            "x": [s["layer"] for s in sp],
            "series": series,
            "xlabel": "layer",
            "ylabel": "share of σ²",
            "ylim": [0, 1.02],
            "caption": "SVD spectra: share of the paired (harmful − harmless) differences' energy along the first "
            "and first two singular directions per layer. High top-1 = the contrast is concentrated in "
            "one direction. Control: the same for within-class pairs (harmful − harmful, harmless − "
            "harmless), which carry no contrast. Point estimates (no interval).",
        }
    ]
    pr = g["probes"]["layers"]

    def band(rows: list[dict[str, Any]], key: str, i: int) -> list[float | None]:
        return [row[key][i] if row.get(key) else None for row in rows]

    figs.append(
        {
            "name": "probes",
            "kind": "curves",
            "title": "Linear probe accuracy by layer",
            "x": [p["layer"] for p in pr],
            "xlabel": "layer",
            "ylabel": "held-out accuracy",
            "ylim": [0, 1.02],
            "series": [
                {
                    "label": "probe",
                    "y": [p["accuracy"] for p in pr],
                    "low": band(pr, "accuracy_ci", 0),
                    "high": band(pr, "accuracy_ci", 1),
                },
                {
                    "label": "shuffled labels (control)",
                    "role": "control",
                    "y": [p["control_accuracy"] for p in pr],
                    "low": band(pr, "control_ci", 0),
                    "high": band(pr, "control_ci", 1),
                },
            ],
            "caption": "Probe accuracy: a logistic probe separating harmful from harmless activations at each "
            "layer, scored on held-out prompts (band: 95% Wilson interval). Control: the same probe "
            "trained on shuffled labels (near 0.5).",
        }
    )
    ln = g["lens"]["layers"]
    half = 1.96 / math.sqrt(n_val) if n_val else 0.0

    def gap(key: str, label: str, role: str) -> dict[str, Any]:
        y = [x[key] for x in ln]
        sd = [x.get(f"{key}_sd") or 0.0 for x in ln]
        return {
            "label": label,
            "role": role,
            "y": y,
            "low": [v - half * s for v, s in zip(y, sd, strict=True)],
            "high": [v + half * s for v, s in zip(y, sd, strict=True)],
        }

    figs.append(
        {
            "name": "lens",
            "kind": "curves",
            "title": "Logit-lens refusal gap by layer",
            "x": [x["layer"] for x in ln],
            "xlabel": "layer",
            "ylabel": "refusal − compliance logit",
            "series": [
                gap("harmful_gap", "harmful prompts", "effect"),
                gap("harmless_gap", "harmless prompts (control)", "control"),
            ],
            "caption": "Logit lens: each layer's residual stream at the last prompt token decoded through the "
            "final norm and unembedding; mean refusal-token minus compliance-token logit (band: 95% "
            "interval of the mean). Control: harmless prompts; where the curves separate, refusal "
            "is readable.",
        }
    )
    cos = g["cosines"]
    figs.append(
        {
            "name": "cosines",
            "kind": "heatmap",
            "title": "Direction cosines (method@layer)",
            "rows": cos["labels"],
            "cols": cos["labels"],
            "matrix": cos["matrix"],
            "vmin": -1,
            "vmax": 1,
            "cbar": "cosine",
            "caption": "Cosine similarity between unit directions (method@layer). Red = aligned, blue = opposed, "
            "white = orthogonal. Reference: random directions in this width have cosine near 0.",
        }
    )
    return figs


SECTION = Section(
    "geometry",
    "Geometry: spectra, probes, logit lens",
    30,
    _run,
    None,
    _figures,
    _verdict,
    requires=("directions",),
    description="SVD spectra, probes, logit lens, cosines",
    controls="shuffled-label probes; within-class pairs for spectra; harmless prompts' lens gap",
)
