"""CLI: checks on a patching result — ``patch-compare`` (the map under each corruption), ``backup``
(compensation after ablating the top components) and ``illusion`` (the subspace-patching illusion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from safetyscope.cli._app import ArchMapOpt, JsonOpt, TrustOpt, app, console, literal, user_errors

ColumnOpt = Annotated[str | None, typer.Option(help="Text field of jsonl/csv/parquet rows.")]
RawOpt = Annotated[bool, typer.Option("--raw", help="Tokenize the prompts as given (no chat template).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Folder for results.json and the figure.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")]
DtypeOpt = Annotated[str | None, typer.Option(help="Model dtype (default bf16 on GPU, fp32 on CPU).")]
MetricOpt = Annotated[str, typer.Option(help="logit_diff (needs --answer/--wrong), refusal or kl.")]
AnswerOpt = Annotated[str | None, typer.Option(help="Answer token text for logit_diff.")]
WrongOpt = Annotated[str | None, typer.Option(help="Wrong token text for logit_diff.")]


def _load(
    model: str,
    dtype: str | None,
    arch_map: Path | None,
    trust: bool,
    out: Path | None,
    force: bool,
    inputs: list[Any],
) -> Any:
    from safetyscope.model import ArchitectureMap, load_model
    from safetyscope.outputs import check_output

    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[model, *inputs, arch_map])
    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    lm = load_model(model, dtype=dtype, arch_map=amap, trust_remote_code=trust)
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[lm.path])
    return lm


def _write(out: Path | None, force: bool, data: dict[str, Any], figures: dict[str, str]) -> None:
    if out is None:
        return
    from safetyscope.paths import atomic_output_dir

    with atomic_output_dir(out, force) as tmp:
        (tmp / "results.json").write_text(
            json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8"
        )
        for name, svg in figures.items():
            (tmp / name).write_text(svg, encoding="utf-8")


def _prompts(path: Path | None, column: str | None) -> list[str] | None:
    from safetyscope.data.prompts import load_prompts

    return None if path is None else list(load_prompts(path, column=column).prompts)


@app.command("patch-compare")
@user_errors
def patch_compare_cmd(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    clean: Annotated[Path, typer.Option("--clean", help="Clean prompts (show the behaviour).")],
    corrupt: Annotated[
        Path | None, typer.Option("--corrupt", help="Counterfactual pairs (for pairs and str).")
    ] = None,
    corruptions: Annotated[
        str, typer.Option(help="Comma-separated: pairs, str, gaussian, zero, mean, resample.")
    ] = "pairs,str,gaussian,zero,mean,resample",
    components: Annotated[str, typer.Option(help="Comma-separated patched components.")] = "resid_pre",
    layers: Annotated[str, typer.Option(help="Layers: all, mid, 3, 0,4,8, 2-5.")] = "all",
    positions: Annotated[
        str, typer.Option(help="Positions: all, last, eoi, eoi:-1, substring:TEXT.")
    ] = "all",
    corrupt_positions: Annotated[
        str, typer.Option("--corrupt-positions", help="Tokens hit by gaussian/zero/mean/resample.")
    ] = "all",
    key: Annotated[str | None, typer.Option("--key", help="str: the text whose tokens are replaced.")] = None,
    str_words: Annotated[Path | None, typer.Option("--str-words", help="str: word-list file.")] = None,
    metric: Annotated[
        str | None, typer.Option(help="logit_diff, kl or refusal (default as for patch).")
    ] = None,
    answer: AnswerOpt = None,
    wrong: WrongOpt = None,
    mode: Annotated[str, typer.Option(help="denoise or noise.")] = "denoise",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Cells compared for the top-k overlap.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of gaussian, resample and str.")] = 0,
    raw: RawOpt = False,
    column: ColumnOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = None,
    as_json: JsonOpt = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """One patching map per corruption, each compared with the pairs map (Spearman ρ, top-k overlap).

    --json prints `comparisons` ({corruption, reference, n_cells, spearman, pearson, top_k_overlap,
    same_top_cell, clean_metric, corrupted_metric}) and `maps` (each a patch result).
    """
    from safetyscope.activations import parse_layers
    from safetyscope.causal import Corruption, corruption_study
    from safetyscope.cli.patching import sweep_figures
    from safetyscope.report.figures import bar_chart

    kinds = [c.strip() for c in corruptions.split(",") if c.strip()]
    corrs = [
        Corruption(
            k,
            corrupt_positions,
            3.0,
            seed,
            key if k == "str" else None,
            str(str_words) if str_words and k == "str" else None,
        )
        for k in kinds
    ]
    lm = _load(model, dtype, arch_map, trust_remote_code, out, force, [clean, corrupt])
    study = corruption_study(
        lm,
        _prompts(clean, column) or [],
        _prompts(corrupt, column),
        corruptions=corrs,
        top_k=top_k,
        components=components,
        layers=parse_layers(layers, lm.n_layers),
        positions=positions,
        metric=metric,
        answer=answer,
        wrong=wrong,
        mode=mode,
        chat=not raw,
    )
    data = study.to_dict()
    figs = {
        f"heatmap_{name}_{comp}.svg": svg
        for name, r in study.results.items()
        for comp, svg in sweep_figures(r).items()
    }
    rho = [c.spearman if c.spearman is not None else 0.0 for c in study.comparisons]
    figs["spearman.svg"] = bar_chart(
        f"rank correlation with the {study.provenance['reference']} map",
        [c.corruption for c in study.comparisons],
        rho,
        ylabel="Spearman rho",
        ymin=-1,
        ymax=1,
    )
    _write(out, force, data, figs)
    if as_json:
        print(json.dumps(data, allow_nan=False))
        return
    for c in study.comparisons:
        r = "n/a" if c.spearman is None else f"{c.spearman:+.3f}"
        console.print(
            f"{c.corruption:>9}: rho {r} vs {c.reference}, top-{c.top_k} overlap {c.top_k_overlap:.2f}, "
            f"same top cell {c.same_top_cell}; clean {c.clean_metric:.4g}, corrupted {c.corrupted_metric:.4g}"
        )
    if out is not None:
        console.print(f"[green]wrote[/] {literal(out)}/results.json and heatmaps")


@app.command("backup")
@user_errors
def backup_cmd(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    prompts: Annotated[Path, typer.Option("--prompts", help="Prompts that show the behaviour.")],
    metric: MetricOpt = "refusal",
    answer: AnswerOpt = None,
    wrong: WrongOpt = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Ablate the top-k components.")] = 2,
    components: Annotated[
        str | None, typer.Option(help="Ablate these instead (L3.attn,L5.mlp or a3,m5).")
    ] = None,
    from_patch: Annotated[
        Path | None,
        typer.Option(
            "--from", help="A patch results.json (attn_out/mlp_out cells): ablate its top-k components."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random-ablation control.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per forward pass.")] = 8,
    raw: RawOpt = False,
    column: ColumnOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = None,
    as_json: JsonOpt = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Backup behaviour: ablate the top-k components and measure how much the others compensate.

    Without --components or --from the top-k are the components with the largest total effect
    (one mean ablation each). --json prints {components, ablated, de_before, de_after,
    total_effect, compensation, compensated_share, control: {...}}.
    """
    from safetyscope.causal import PatchingResult, make_metric
    from safetyscope.causal.backup import Component, backup_behaviour, components_from_patching
    from safetyscope.report.figures import Series, line_chart

    lm = _load(model, dtype, arch_map, trust_remote_code, out, force, [prompts, from_patch])
    met = make_metric(metric, lm.tokenizer, answer, wrong)
    chosen = None
    if components:
        chosen = [Component.parse(c, lm.n_layers) for c in components.split(",") if c.strip()]
    elif from_patch is not None:
        chosen = components_from_patching(PatchingResult.load(from_patch), k)
    res = backup_behaviour(
        lm,
        _prompts(prompts, column) or [],
        met,
        k=k,
        ablate=chosen,
        control_seed=seed,
        batch_size=batch_size,
        chat=not raw,
    )
    fig = line_chart(
        f"direct effect on {met.name} before and after ablating {', '.join(res.ablated)}",
        res.components,  # type: ignore[arg-type]  # categorical x labels
        [Series("before (DE0)", res.de_before), Series("after (DE1)", res.de_after, True)],
        xlabel="component",
        ylabel="direct effect",
    )
    _write(out, force, res.to_dict(), {"direct_effects.svg": fig})
    if as_json:
        print(json.dumps(res.to_dict(), allow_nan=False))
        return

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    console.print(
        f"{met.name}: model {res.metric_clean:.4g}, ablated {', '.join(res.ablated)} -> "
        f"{res.metric_ablated:.4g} (total effect {res.total_effect:+.4g}; their direct effect "
        f"{res.direct_effect_ablated:+.4g})"
    )
    console.print(
        f"compensated share {f(res.compensated_share)} (compensation {res.compensation:.4g}); control "
        f"(ablate {', '.join(res.control.get('ablated', []))}): {f(res.control.get('compensated_share'))}"
    )
    if out is not None:
        console.print(f"[green]wrote[/] {literal(out)}/results.json and direct_effects.svg")


@app.command("illusion")
@user_errors
def illusion_cmd(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    clean: Annotated[Path, typer.Option("--clean", help="Clean prompts (show the behaviour).")],
    corrupt: Annotated[Path, typer.Option("--corrupt", help="Corrupted prompts, one per clean prompt.")],
    layer: Annotated[int, typer.Option(help="Block of the component.")],
    component: Annotated[
        str, typer.Option(help="mlp (hidden activation) or head (one head's output).")
    ] = "mlp",
    head: Annotated[int | None, typer.Option(help="Head index for --component head.")] = None,
    direction: Annotated[
        Path | None,
        typer.Option(
            "--direction",
            help="A tensor file (.safetensors/.pt/.npy) with one vector of the component's width "
            "(default: the clean-minus-corrupted mean difference).",
        ),
    ] = None,
    positions: Annotated[str, typer.Option(help="The patched token: last, eoi:-1, substring:TEXT.")] = "last",
    metric: MetricOpt = "refusal",
    answer: AnswerOpt = None,
    wrong: WrongOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the random-direction control.")] = 0,
    raw: RawOpt = False,
    column: ColumnOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = None,
    as_json: JsonOpt = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Subspace-patching illusion check: the effect of a patched direction through the part the
    output weights read and the part they ignore, against the full-component patch.

    --json prints {effects: {full, row, null, component, random}, recovery, null_share, dormancy,
    dormant, illusion, rank, d_hidden}.
    """
    from safetyscope.causal import make_metric
    from safetyscope.causal.illusion import illusion_check
    from safetyscope.report.figures import bar_chart

    vec = None
    if direction is not None:
        from safetyscope.data.tensors import load_tensor

        vec = load_tensor(direction).values.flatten()
    lm = _load(model, dtype, arch_map, trust_remote_code, out, force, [clean, corrupt, direction])
    met = make_metric(metric, lm.tokenizer, answer, wrong)
    res = illusion_check(
        lm,
        _prompts(clean, column) or [],
        _prompts(corrupt, column) or [],
        met,
        layer=layer,
        component=component,
        head=head,
        direction=vec,
        positions=positions,
        seed=seed,
        chat=not raw,
    )
    rec = [res.recovery[k] or 0.0 for k in ("full", "row", "null", "component", "random")]
    fig = bar_chart(
        f"{res.site} patch recovery: direction, its parts, whole component, random",
        ["direction", "row part", "null part", "component", "random"],
        rec,
        ylabel="recovery",
        ymin=None,
    )
    _write(out, force, res.to_dict(), {"illusion.svg": fig})
    if as_json:
        print(json.dumps(res.to_dict(), allow_nan=False))
        return
    console.print(
        f"{res.site}{'' if head is None else f' head {head}'}: rank {res.rank} of {res.d_hidden}; "
        f"|v_row| {res.row_norm:.3f}, |v_null| {res.null_norm:.3f}"
    )
    for name in ("full", "row", "null", "component", "random"):
        r = res.recovery[name]
        console.print(
            f"  {name:>9}: effect {res.effects[name]:+.4g}" + ("" if r is None else f", recovery {r:+.3f}")
        )
    share = "n/a" if res.null_share is None else f"{res.null_share:.2f}"
    dorm = "n/a" if res.dormancy is None else f"{res.dormancy:.3f}"
    flag = "[red]ILLUSION SIGNATURE[/]" if res.illusion else "no illusion signature"
    console.print(f"null-space share {share}, dormancy {dorm} (dormant {res.dormant}): {flag}")
    if out is not None:
        console.print(f"[green]wrote[/] {literal(out)}/results.json and illusion.svg")
