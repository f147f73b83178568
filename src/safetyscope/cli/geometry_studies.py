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


def load_sae_dir(path: Path) -> Any:
    """An SAE folder (SAELens format) through ``safetyscope.sae.load_sae``; a clear error where that package is absent."""
    try:
        from safetyscope.sae import load_sae  # type: ignore[attr-defined]
    except ImportError as exc:
        raise SafetyscopeError(
            "--sae needs the safetyscope.sae package (SAE training and loading), which this install lacks; "
            "run without --sae for the non-SAE targets.") from exc
    return load_sae(path)


@app.command("plateaus")
@user_errors
def plateaus(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    sae: Annotated[Path | None, typer.Option("--sae", help="SAE folder (SAELens format) at --site; without it "
                                             "only the real/gaussian/cov_random/random targets run.")] = None,
    n: Annotated[int, typer.Option("--n", min=2, help="Base activations (prompts).")] = 500,
    site: Annotated[str, typer.Option("--site", help="Early site to perturb.")] = "L0.resid_post",
    read: Annotated[str, typer.Option("--read", help="Late site to read (default: the last block's output).")] = "-1",
    n_steps: Annotated[int, typer.Option("--steps", min=2, help="Perturbation steps.")] = 20,
    mode: Annotated[str, typer.Option("--mode", help="relative (fraction of the way) or absolute (fixed step).")]
    = "relative",
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Tokens per sequence.")] = 8,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Texts; default: organism corpus or bundled.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of targets and pairing.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json and curves.svg.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Activation plateaus (arXiv 2409.15019): step from real activations towards real, Gaussian,
    cov-random, random and (with --sae) SAE-built targets, all norm-matched; report blow-up step,
    plateau length and the KS statistic against real targets, per target kind.
    """
    from safetyscope.analysis.plateaus import STEP_MODES, plateau_study
    from safetyscope.analysis.sequences import default_texts, token_sequences
    from safetyscope.data.prompts import load_prompts
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output
    from safetyscope.paths import atomic_output_dir
    from safetyscope.report.figures import Series, line_chart

    if mode not in STEP_MODES:
        raise SafetyscopeError(f"--mode {mode!r}: use one of {', '.join(STEP_MODES)}.")
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[model, sae, prompts])
    sae_model = load_sae_dir(sae) if sae is not None else None
    lm = load_model(model, dtype=dtype)
    texts = list(load_prompts(prompts).prompts) if prompts is not None else default_texts(lm, n=max(400, 2 * n))[0]
    seqs = token_sequences(lm.tokenizer, texts, seq_len)
    if len(seqs) < n:
        raise SafetyscopeError(f"Only {len(seqs)} distinct {seq_len}-token sequences for --n {n}; lower --n or "
                               "--seq-len, or give more --prompts.")
    res = plateau_study(lm, seqs[:n], site=parse_site(site, lm.n_layers), read=parse_site(read, lm.n_layers),
                        sae=sae_model, sae_name=str(sae) if sae else None, n_steps=n_steps, mode=mode, seed=seed,
                        progress=not as_json)
    if out is not None:
        with atomic_output_dir(out, force) as tmp:
            res.save(tmp / "results.json")
            svg = line_chart(f"Plateaus: median normalised change at {res.read_site}", list(range(n_steps + 1)),
                             [Series(k, v) for k, v in res.median_curve.items()], xlabel="step",
                             ylabel="change / final change", ymin=0.0)
            (tmp / "curves.svg").write_text(svg, encoding="utf-8")
    summary = res.summary()
    if as_json:
        print(json.dumps(summary, default=lambda v: None, allow_nan=True).replace("NaN", "null"))
        return
    table = Table("target", "blow-up step (mean ± sd)", "plateau (mean ± sd)", "KS blow-up vs real",
                  "KS plateau vs real", "no blow-up", title=f"plateaus: {res.site} -> {res.read_site}, {mode} steps, "
                  f"n={len(seqs[:n])}")
    for kind, row in summary["kinds"].items():
        table.add_row(kind, f"{row['blowup_mean']:.2f} ± {row['blowup_sd']:.2f}",
                      f"{row['plateau_mean']:.2f} ± {row['plateau_sd']:.2f}", f"{row['ks_vs_real']:.2f}",
                      f"{row['ks_plateau_vs_real']:.2f}", f"{row['no_blowup']:.2f}")
    console.print(table)
    if summary["note"]:
        console.print(f"note: {summary['note']}")
    if out is not None:
        console.print(f"[green]wrote[/] {literal(out)}/results.json, curves.svg")
