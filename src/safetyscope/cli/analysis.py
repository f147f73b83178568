"""CLI commands that read representations: activations collect, geometry, directions select."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safetyscope.cli._app import (
    ArchMapOpt,
    DtypeOpt,
    HarmfulOpt,
    HarmlessOpt,
    JsonOpt,
    TrustOpt,
    activations_app,
    app,
    console,
    directions_app,
    literal,
    positive,
    user_errors,
)


@activations_app.command("collect")
@user_errors
def activations_collect(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    prompts: Annotated[Path, typer.Option("--prompts", help="Prompt file: .txt (one per line), .jsonl, .csv or .parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Output .safetensors file.")],
    layers: Annotated[str, typer.Option(help="Layers: all, mid, 3, 0,4,8, 2-5, -1.")] = "all",
    point: Annotated[str, typer.Option(help="Stream point: resid_pre, resid_post, attn_out, mlp_out.")] = "resid_pre",
    positions: Annotated[str, typer.Option(help="Positions: last, eoi, eoi:-1, all, substring:TEXT.")] = "last",
    reduce: Annotated[str, typer.Option(help="none (keep rows), mean, or cov (mean + covariance).")] = "mean",
    column: Annotated[str | None, typer.Option(help="Text field of jsonl/csv/parquet rows.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Max prompts per batch (default: token budget).")] = None,
    dtype: DtypeOpt = "auto",
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and resume from the activation cache.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Collect activations at (layers, point, positions) for a prompt file into one safetensors file."""
    from safetyscope.activations import Positions, Site, collect, parse_layers
    from safetyscope.data.prompts import load_prompts
    from safetyscope.model import ArchitectureMap, load_model
    from safetyscope.outputs import check_output

    check_output(out, force=force, kind="file", inputs=[model, prompts, arch_map])
    Positions.parse(positions)  # bad syntax fails before the model loads
    pset = load_prompts(prompts, column=column)
    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    lm = load_model(model, dtype=dtype, arch_map=amap, trust_remote_code=trust_remote_code)
    check_output(out, force=force, kind="file", inputs=[lm.path])
    sites = [Site(layer, point) for layer in parse_layers(layers, lm.n_layers)]  # type: ignore[arg-type]
    result = collect(lm, pset, sites, positions, reduce, batch_size=batch_size, cache=cache)
    result.save(out)
    console.print(f"[green]saved[/] {len(sites)} sites x {len(pset)} prompts ({literal(reduce)}) to {literal(out)}")


@app.command()
@user_errors
def geometry(
    harmful: Annotated[Path, typer.Option("--harmful", help="Harmful activations [n, d] or [n, layers, d]: .safetensors, .pt, .npy/.npz.")],
    harmless: Annotated[Path, typer.Option("--harmless", help="Harmless activations, rows paired with --harmful by index.")],
    key: Annotated[str | None, typer.Option("--key", help="Tensor name inside the files, when they hold several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    centred: Annotated[bool, typer.Option("--centred", help="Centre the paired differences before the SVD.")] = False,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="k of the cumulative explained variance column.")] = 5,
    mahalanobis: Annotated[bool, typer.Option("--mahalanobis", help="Add the Mahalanobis separation (d x d solve per layer).")] = False,
    methods: Annotated[str | None, typer.Option("--methods", help="Compare directions by cosine, e.g. diff_means,pca,probe.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report to this file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
) -> None:
    """SVD spectrum of paired harmful - harmless activation differences, per layer (no model needed)."""
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.geometry import run_geometry

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[harmful, harmless])

    method_list = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    report = run_geometry(harmful, harmless, key=key, centred=centred, top_k=top_k,
                          mahalanobis=mahalanobis, methods=method_list)
    if out is not None:
        report.save(out)
    if as_json:
        print(report.to_json())
        return
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    table = Table("layer", "top1", "top2", f"top{report.top_k}", "|mean diff|", "cos(mean, v1)",
                  *(["mahalanobis"] if mahalanobis else []),
                  title=f"paired-difference spectrum (n={report.n}, d={report.d}, {'centred' if centred else 'uncentred'})")
    for s in report.layers:
        table.add_row("-" if s.layer is None else str(s.layer), fmt(s.top1), fmt(s.top2), fmt(s.cumulative_top_k),
                      fmt(s.mean_diff_norm), fmt(s.cos_mean_diff_top1), *([fmt(s.mahalanobis)] if mahalanobis else []))
    console.print(table)
    for layer, cm in report.method_cosines.items():
        ctable = Table("", *cm.labels, title=f"cosine between methods, layer {layer}")
        for label, row in zip(cm.labels, cm.matrix, strict=True):
            ctable.add_row(label, *(f"{v:+.2f}" for v in row))
        console.print(ctable)
    if out is not None:
        console.print(f"[green]saved[/] {literal(out)}")


@directions_app.command("select")
@user_errors
def directions_select(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the direction (.safetensors).")],
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    method: Annotated[str, typer.Option(
        help="causal (refusal-token bypass / induce / KL, Arditi et al.) or cosmic (activation cosines, no refusal template).")] = "causal",
    mode: Annotated[str, typer.Option(help="fast (rank by an estimate, score the top exactly) or exhaustive.")] = "fast",
    max_kl: Annotated[float, typer.Option(callback=positive, help="Maximum first-token KL on harmless prompts.")] = 0.1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Select the refusal direction over layers x end-of-instruction positions (causal: bypass / induce / KL; cosmic: cosine scores)."""
    from safetyscope.errors import OptionError
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.refusal import refusal_prompts, select, select_cosmic

    if method not in ("causal", "cosmic"):
        raise OptionError(f"--method {method!r}: use causal or cosmic.")
    check_output(out, force=force, kind="file", inputs=[model, harmful, harmless])
    lm = load_model(model, dtype=dtype)
    check_output(out, force=force, kind="file", inputs=[lm.path])
    if method == "cosmic":
        csel, direction = select_cosmic(lm, refusal_prompts(lm, harmful, harmless), max_kl=max_kl, mode=mode)
        direction.save(out)
        if as_json:
            print(json.dumps(csel.to_dict(), indent=2))  # type: ignore[attr-defined]
            return
        table = Table("layer", "eoi pos", "S_comply", "S_refuse", "score", "proxy", "KL", "eligible",
                      title=f"COSMIC candidates (best first; cosines at layers {csel.low_layers})")  # type: ignore[attr-defined]
        for c in csel.candidates:  # type: ignore[attr-defined]
            table.add_row(str(c.layer), str(c.position), f"{c.s_comply:.3f}", f"{c.s_refuse:.3f}", f"{c.score:.3f}",
                          f"{c.proxy:.3f}", f"{c.kl:.3f}", "yes" if c.eligible else c.reason)
        console.print(table)
        console.print(f"[green]saved[/] layer {direction.layer} direction to {literal(out)}")
        return
    sel, direction = select(lm, refusal_prompts(lm, harmful, harmless), max_kl=max_kl, mode=mode)
    direction.save(out)
    if as_json:
        print(json.dumps(sel.to_dict(), indent=2))
        return
    table = Table("layer", "eoi pos", "bypass", "induce", "KL", "eligible", title="candidates (best first)")
    for c in sel.candidates:
        table.add_row(str(c.layer), str(c.position), f"{c.bypass:.2f}", f"{c.induce:.2f}", f"{c.kl:.3f}",
                      "yes" if c.eligible else c.reason)
    console.print(table)
    console.print(f"baseline refusal score: harmful {sel.baseline_harmful:.2f}, harmless {sel.baseline_harmless:.2f}")
    console.print(f"[green]saved[/] layer {sel.best.layer} direction to {literal(out)}")
