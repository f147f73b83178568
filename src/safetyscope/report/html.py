"""Render an audit's ``results.json`` dict as one self-contained, offline HTML page.

Inline CSS and inline SVG only (:mod:`safetyscope.report.figures`): no scripts, no fonts, no
images or stylesheets fetched from anywhere. Every figure carries a caption saying what it
shows and what its control is.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from safetyscope.report.figures import Series, grid_heatmap, heatmap, line_chart

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;font-size:.9rem}th{background:#f4f4f4}
figure{display:inline-block;vertical-align:top;margin:.5rem 1rem 1rem 0;max-width:660px}
figcaption{font-size:.85rem;color:#444}.small{font-size:.8rem;color:#666}code{background:#f4f4f4;padding:0 .2rem}"""


def _pct(rate: dict[str, Any] | None) -> str:
    if not rate or rate.get("rate") is None:
        return "n/a"
    return f"{100 * rate['rate']:.1f}% [{100 * rate['ci_low']:.1f}, {100 * rate['ci_high']:.1f}] (n={rate['n']})"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _behavior_table(r: dict[str, Any]) -> str:
    b, iv = r["behavior"], r["interventions"]
    rows = [["baseline", _pct(b["refusal"]["harmful"]), _pct(b["refusal"]["harmless"])]]
    for name, rep in iv.items():
        for arm in ("intervened", "control"):
            if arm in rep["arms"]:
                ref = rep["arms"][arm]["refusal"]
                label = f"{name} ({'selected direction' if arm == 'intervened' else 'random control'})"
                rows.append([label, _pct(ref.get("harmful")), _pct(ref.get("harmless"))])
    table = _table(["condition", "refusal on harmful (95% Wilson CI)", "refusal on harmless"], rows)
    if "backdoor_triggered" in b:
        table += _table(["prompts", "backdoor rate (95% Wilson CI)"],
                        [[f"with trigger {b['trigger']}", _pct(b["backdoor_triggered"])],
                         [f"with control {b['control_trigger']}", _pct(b["backdoor_control"])]])
    return table


def figures(r: dict[str, Any]) -> list[str]:
    """The report's captioned figures, in order."""
    g = r["geometry"]
    out = []
    by = g["refusal_by_layer"]
    layers = [row["layer"] for row in by["layers"]]
    out.append(_figure(line_chart("Refusal score by layer under ablation", layers, [
        Series("DIM of layer ablated", [row["ablated"] for row in by["layers"]]),
        Series("random direction (control)", [row["control"] for row in by["layers"]], dashed=True),
        Series("no ablation", [by["baseline_harmful"]] * len(layers), dashed=True),
    ], ylabel="refusal log-odds"), "Refusal by layer: mean refusal log-odds of held-out harmful prompts while "
        "the difference-in-means direction read at each layer is projected out of every layer. Lower = refusal "
        "removed. Control: a random direction of equal norm (should stay near the no-ablation line)."))
    sp = g["spectrum"]
    out.append(_figure(line_chart("SVD spectrum of paired differences", [s["layer"] for s in sp], [
        Series("top1 share", [s["top1"] for s in sp]), Series("top2 share", [s["top2"] for s in sp]),
    ], ylabel="share of σ²", ymin=0, ymax=1), "SVD spectra: share of the paired (harmful − harmless) "
        "differences' energy along the first and first two singular directions per layer. High top1 = refusal "
        "concentrated in one direction. Reference: a random contrast spreads energy over many directions."))
    pr = g["probes"]["layers"]
    out.append(_figure(line_chart("Probe accuracy by layer", [p["layer"] for p in pr], [
        Series("probe (held-out)", [p["accuracy"] for p in pr]),
        Series("shuffled labels (control)", [p["control_accuracy"] for p in pr], dashed=True),
    ], ylabel="accuracy", ymin=0, ymax=1), "Probe accuracy: a logistic probe separating harmful from harmless "
        "activations at each layer, scored on held-out prompts. Control: the same probe trained on shuffled "
        "labels (should sit near 0.5)."))
    ln = g["lens"]["layers"]
    out.append(_figure(line_chart("Logit-lens refusal gap by layer", [x["layer"] for x in ln], [
        Series("harmful prompts", [x["harmful_gap"] for x in ln]),
        Series("harmless prompts (control)", [x["harmless_gap"] for x in ln], dashed=True),
    ], ylabel="refusal − compliance logit"), "Logit-lens gap: each layer's residual stream at the last prompt "
        "token decoded through the final norm and unembedding; mean refusal-token minus compliance-token logit. "
        "Control: the harmless prompts' gap; the depth where the curves separate is where refusal becomes readable."))
    bd = r["backdoor"].get("layers") or []
    if bd:
        out += _backdoor_figures(r["backdoor"])
    else:
        out.append(f"<p class=small>Backdoor patching: {escape(str(r['backdoor'].get('skipped', 'not run')))}.</p>")
    cos = g["cosines"]
    out.append(_figure(heatmap("Direction cosines across layers and methods", cos["labels"], cos["matrix"]),
                       "Cosine heatmap: cosine similarity between unit directions (method@layer). Red = aligned, "
                       "blue = opposed, white = orthogonal; random directions in this width would be near 0."))
    return out


def _backdoor_figures(b: dict[str, Any]) -> list[str]:
    """Steerability by layer with its two controls, and the layer x trigger-token patching heatmap."""
    bd = b["layers"]
    series = [Series("control-tag activations patched", [x["steerability"]["rate"] for x in bd]),
              Series("same-trigger control (another triggered prompt)", [x["control"]["rate"] for x in bd],
                     dashed=True)]
    if all("noise_control" in x for x in bd):
        series.append(Series("equal-norm noise (control)", [x["noise_control"]["rate"] for x in bd], dashed=True))
    out = [_figure(line_chart("Backdoor steerability by layer (trigger patching)", [x["layer"] for x in bd], series,
                              ylabel="fraction without backdoor", ymin=0, ymax=1),
                   "Steerability: fraction of triggered prompts whose completion loses the backdoor when the trigger "
                   "tokens' resid_pre at that layer is replaced by the control tag's. Controls at the same tokens "
                   "and layer: the trigger's own activations from a different triggered prompt (should keep the "
                   "backdoor), and Gaussian noise of the same norm.")]
    sweep = b.get("patching")
    if sweep and sweep.get("scores"):
        layers = sorted({s["layer"] for s in sweep["scores"]})
        cols = list(sweep["positions"])
        cells = {(s["layer"], s["position"]): s["recovery"] for s in sweep["scores"]}
        matrix = [[cells.get((layer, p)) for p in cols] for layer in layers]
        labels = [f"{p}:{t}" for p, t in zip(cols, sweep["position_labels"], strict=True)]
        out.append(_figure(grid_heatmap("Trigger patching: layer x trigger token", [str(x) for x in layers], labels,
                                        matrix, vmin=-1, vmax=1, xlabel="trigger token", ylabel="layer"),
                           "Activation patching (noising) at one trigger token and layer: the control-tag run's "
                           "resid_pre replaces the triggered run's. Colour: normalised recovery of the first "
                           "response token's distribution, 1 (red) = unchanged from the triggered run, 0 (white) "
                           "= as with the control tag. Grey: undefined (trigger changes nothing)."))
    return out


def render(results: dict[str, Any]) -> str:
    """The complete HTML page for an audit ``results`` dict."""
    p, d = results["provenance"], results["directions"]
    best = d["best"]
    timings = results["timings"]
    trows = [[k, f"{v['seconds']:.1f}", "cached" if v.get("cached") else ""] for k, v in timings.items()]
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>safetyscope audit: {escape(str(p['model']))}</title><style>{CSS}</style></head><body>",
        f"<h1>safetyscope audit — {escape(str(p['model']))}</h1>",
        f"<p class=small>{p['n_layers']} layers, d_model {p['d_model']}; prompts: {escape(str(p['prompts']))}; "
        f"judge: {escape(str(p['judge']))}; safetyscope {escape(str(p['safetyscope_version']))}.</p>",
        "<h2>Headline numbers</h2>",
        f"<p>Selected refusal direction: layer {best['layer']}, end-of-instruction position {best['position']} "
        f"(difference in means, norm {best['raw_norm']:.3g}).</p>",
        ("<p><b>Causal selection found no direction that passes its filters</b> "
         f"({escape(str(d['selection'].get('error', '')))}); the difference in means at the middle layer is "
         "used instead, so intervention results are exploratory.</p>") if best.get("fallback") else "",
        _behavior_table(results),
        "<h2>Figures</h2>", *figures(results),
        "<h2>Timings</h2>", _table(["step", "seconds", ""], trows),
        f"<h2>Provenance</h2><pre class=small>{escape(_pretty(p))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _pretty(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2)


def write_report(results: dict[str, Any], path: Path) -> Path:
    """Render ``results`` and write it to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results), encoding="utf-8")
    return path
