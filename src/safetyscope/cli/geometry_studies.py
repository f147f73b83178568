"""CLI: the residual-stream geometry studies, ``safetyscope regions`` and ``safetyscope plateaus``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safetyscope.cli._app import DtypeOpt, JsonOpt, app, console, literal, user_errors
from safetyscope.errors import SafetyscopeError


def parse_site(text: str, n_layers: int) -> Any:
    """``L0.resid_post``, ``0`` (the output of block 0) or ``-1`` (from the end) as a :class:`Site`."""
    from safetyscope.activations import Site

    text = text.strip()
    if text.lstrip("-").isdigit():
        layer = int(text)
        layer = n_layers + layer if layer < 0 else layer
        if not 0 <= layer < n_layers:
            raise SafetyscopeError(f"--site {text}: layer out of range (model has {n_layers} layers).")
        return Site(layer, "resid_post")
    try:
        site = Site.from_key(text)
    except (ValueError, TypeError) as exc:
        raise SafetyscopeError(f"Cannot parse --site {text!r}; use L0.resid_post, L2.resid_pre or a layer number.") from exc
    if site.layer >= n_layers:
        raise SafetyscopeError(f"--site {text}: layer out of range (model has {n_layers} layers).")
    return site


def model_label(lm: Any) -> str:
    """``step N`` for a checkpoint folder (``checkpoint.json``), an organism card's spec, else the model spec."""
    if lm.path is not None and (lm.path / "checkpoint.json").is_file():
        step = json.loads((lm.path / "checkpoint.json").read_text()).get("step")
        if step is not None:
            return f"step {step}"
    if lm.path is not None and (lm.path / "organism_card.json").is_file():
        return str(json.loads((lm.path / "organism_card.json").read_text()).get("spec") or lm.spec)
    return str(lm.spec)


def regions_figures(results: list[Any], labels: list[str]) -> dict[str, str]:
    """SVGs: the median interpolation curve (with quartiles) per model, and max slope per model."""
    import torch

    from safetyscope.report.figures import Series, bar_chart, line_chart

    series = []
    for label, res in zip(labels, results, strict=True):
        if not res.curves:
            continue
        q = torch.quantile(torch.tensor(res.curves, dtype=torch.float64), torch.tensor([0.25, 0.5, 0.75],
                                                                                         dtype=torch.float64), dim=0)
        series.append(Series(f"{label} median", q[1].tolist()))
        series.append(Series(f"{label} 25%", q[0].tolist(), dashed=True))
        series.append(Series(f"{label} 75%", q[2].tolist(), dashed=True))
    x = [round(a, 2) for a in results[0].alphas]
    curves = line_chart(f"Interpolation: d(alpha)/d(1) ({results[0].pair_kind} pairs)", x, series,
                        xlabel="alpha", ylabel="d/d(1)", ymin=0.0, ymax=1.05)
    slopes = bar_chart("Max slope (median, IQR whiskers)", labels, [r.median_max_slope for r in results],
                       errors=[r.iqr for r in results], ylabel="max slope")
    return {"interpolation.svg": curves, "max_slope.svg": slopes}


@app.command("regions")
@user_errors
def regions(
    models: Annotated[list[str], typer.Argument(help="Model specs: e.g. organism, organism:tiny:0:init, a folder.")],
    pairs: Annotated[str, typer.Option("--pairs", help="different (random pairs) or similar (last token differs).")]
    = "different",
    n: Annotated[int, typer.Option("--n", min=1, help="Number of pairs.")] = 100,
    site: Annotated[str, typer.Option("--site", help="Interpolation site: L0.resid_post (default), or a layer.")]
    = "L0.resid_post",
    steps: Annotated[int, typer.Option("--steps", min=3, help="Points on the alpha grid.")] = 21,
    path: Annotated[str, typer.Option("--path", help="line, or arc (keeps the norm).")] = "line",
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Tokens per sequence.")] = 8,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Texts (.txt/.jsonl/.csv/.parquet); "
                                                  "default: the organism corpus, or the bundled prompts.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the pair draw.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json and SVG figures.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Stable regions (arXiv 2409.17113): interpolate between two prompts' activations at an early
    site and measure how sharply the final residual switches from A's to B's.

    Prints, per model, the median max slope with its interquartile range (1 = a straight line,
    steps-1 = a step). --json prints one object per model: model, median_max_slope, iqr, n_pairs, pairs.
    """
    from safetyscope.analysis.regions import PATH_KINDS, regions_study
    from safetyscope.analysis.sequences import PAIR_KINDS
    from safetyscope.data.prompts import load_prompts
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output
    from safetyscope.paths import atomic_output_dir

    if pairs not in PAIR_KINDS:
        raise SafetyscopeError(f"--pairs {pairs!r}: use one of {', '.join(PAIR_KINDS)}.")
    if path not in PATH_KINDS:
        raise SafetyscopeError(f"--path {path!r}: use one of {', '.join(PATH_KINDS)}.")
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[*models, prompts])
    texts = list(load_prompts(prompts).prompts) if prompts is not None else None
    results, labels = [], []
    for spec in models:
        lm = load_model(spec, dtype=dtype)
        res = regions_study(lm, pairs=pairs, n=n, seq_len=seq_len, texts=texts, seed=seed,
                            site=parse_site(site, lm.n_layers), steps=steps, path=path, progress=not as_json)
        results.append(res)
        labels.append(model_label(lm))
        del lm
    if out is not None:
        with atomic_output_dir(out, force) as tmp:
            (tmp / "results.json").write_text(json.dumps([r.to_dict() for r in results], allow_nan=False))
            for name, svg in regions_figures(results, labels).items():
                (tmp / name).write_text(svg, encoding="utf-8")
    if as_json:
        for r in results:
            print(json.dumps(r.summary()))
        return
    table = Table("model", "median max slope", "IQR", "median 95% CI", "pairs", title=f"stable regions ({pairs} pairs, "
                  f"{path} path, {steps} steps; 1 = straight line, {steps - 1} = step)")
    for label, r in zip(labels, results, strict=True):
        s = r.summary()
        table.add_row(literal(label), f"{s['median_max_slope']:.2f}", f"[{s['iqr'][0]:.2f}, {s['iqr'][1]:.2f}]",
                      f"[{s['median_ci'][0]:.2f}, {s['median_ci'][1]:.2f}]", f"{s['n_pairs']} (+{s['n_dropped']} dropped)")
    console.print(table)
    if out is not None:
        console.print(f"[green]wrote[/] {literal(out)}/results.json, interpolation.svg, max_slope.svg")
