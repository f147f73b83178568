"""CLI: ``safetyscope patch``, an activation-patching sweep with a heatmap and results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from safetyscope.cli._app import ArchMapOpt, JsonOpt, TrustOpt, app, console, finite, literal, user_errors


def sweep_figures(result: Any) -> dict[str, str]:
    """One SVG heatmap per component: layer × position (heads: layer.head × position).

    Cells show the normalised recovery (0 = corrupted, 1 = clean) when clean and corrupted
    differ, else the raw metric on a symmetric scale.
    """
    from safetyscope.report.figures import grid_heatmap

    use_rec = any(s.recovery is not None for s in result.scores)
    vals = [abs(s.recovery if use_rec else s.value) for s in result.scores
            if (s.recovery if use_rec else s.value) is not None]
    span = 1.0 if use_rec else max([*vals, 1e-12])
    joint = all(s.position is None for s in result.scores)
    cols = ["all"] if joint else [f"{p}:{t!r}" for p, t in zip(result.positions, result.position_labels, strict=True)]
    what = "recovery (0 = corrupted, 1 = clean)" if use_rec else result.metric
    out = {}
    for comp in dict.fromkeys(s.component for s in result.scores):
        if comp == "heads":
            heads = sorted({s.head for s in result.scores if s.component == "heads"})
            rows, matrix = [], []
            for layer in result.layers("heads"):
                for h in heads:
                    rows.append(f"L{layer}.H{h}")
                    matrix.extend(result_grid(result, comp, layer, h, use_rec))
        else:
            rows = [str(x) for x in result.layers(comp)]
            matrix = [row for layer in result.layers(comp) for row in result_grid(result, comp, layer, None, use_rec)]
        title = f"{comp}: {result.mode} patching, {what}"
        out[comp] = grid_heatmap(title, rows, cols, matrix, vmin=-span, vmax=span,
                                 ylabel="layer.head" if comp == "heads" else "layer")
    return out


def result_grid(result: Any, comp: str, layer: int, head: int | None, recovery: bool) -> list[list[float | None]]:
    """The single row (over position slots) of one layer (and head) of ``comp``."""
    cells = {s.position: (s.recovery if recovery else s.value) for s in result.scores
             if s.component == comp and s.layer == layer and s.head == head}
    keys = [None] if all(s.position is None for s in result.scores) else list(result.positions)
    return [[cells.get(p) for p in keys]]


@app.command("patch")
@user_errors
def patch_cmd(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    clean: Annotated[Path, typer.Option("--clean", help="Clean prompts (show the behaviour): .txt/.jsonl/.csv/.parquet.")],
    corrupt: Annotated[Path | None, typer.Option(
        "--corrupt", help="Corrupted prompts, one per clean prompt, same token length (corruption 'pairs').")] = None,
    components: Annotated[str, typer.Option(
        help="Comma-separated: resid_pre, resid_post, attn_out, mlp_out, heads.")] = "resid_pre",
    layers: Annotated[str, typer.Option(help="Layers: all, mid, 3, 0,4,8, 2-5, -1.")] = "all",
    positions: Annotated[str, typer.Option(help="Positions: all, last, eoi, eoi:-1, substring:TEXT.")] = "all",
    heads: Annotated[str, typer.Option(help="Heads for the heads component: all, 0,3, 2-5.")] = "all",
    metric: Annotated[str | None, typer.Option(
        help="logit_diff (needs --answer/--wrong), kl or refusal. Default: logit_diff with --answer, else kl.")] = None,
    answer: Annotated[str | None, typer.Option(help="Answer token text for logit_diff (its first token).")] = None,
    wrong: Annotated[str | None, typer.Option(help="Wrong token text for logit_diff.")] = None,
    mode: Annotated[str, typer.Option(help="denoise (clean into corrupted) or noise (corrupted into clean).")] = "denoise",
    corruption: Annotated[str, typer.Option(
        help="pairs (counterfactual prompts), str (symmetric token replacement of --key or the pairs' differing "
             "words), gaussian (alias noise: Gaussian on embeddings), zero, mean, resample (embeddings of another "
             "prompt of the same length).")] = "pairs",
    corrupt_positions: Annotated[str, typer.Option(
        "--corrupt-positions", help="Tokens hit by gaussian/zero/mean/resample: all, last, eoi, substring:TEXT.")] = "all",
    key: Annotated[str | None, typer.Option("--key", help="str: the text whose tokens are replaced.")] = None,
    str_words: Annotated[Path | None, typer.Option(
        "--str-words", help="str: word-list file replacing the bundled one (one word a line).")] = None,
    noise_scale: Annotated[float, typer.Option(callback=finite, help="Noise std in units of the embedding std (ROME: 3).")] = 3.0,
    seed: Annotated[int, typer.Option(help="Seed of the gaussian, resample and str corruptions.")] = 0,
    joint: Annotated[bool, typer.Option("--joint", help="Patch all selected positions at once (one cell per layer).")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Tokenize the prompts as given (no chat template).")] = False,
    token_budget: Annotated[int, typer.Option(min=1, help="Tokens per forward pass of the expanded batch.")] = 8192,
    column: Annotated[str | None, typer.Option(help="Text field of jsonl/csv/parquet rows.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json and the heatmaps.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    dtype: Annotated[str | None, typer.Option(help="Model dtype (default bf16 on GPU, fp32 on CPU).")] = None,
    as_json: JsonOpt = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Activation patching: patch each (component, layer, position[, head]) and measure the metric.

    Writes results.json and one SVG heatmap per component into --out; --json prints one object
    with `scores` ({component, layer, position, head, value, recovery}), `clean_metric` and
    `corrupted_metric`.
    """
    from safetyscope.activations import parse_layers
    from safetyscope.causal import Corruption, patching_sweep
    from safetyscope.causal.patch_spec import parse_components
    from safetyscope.data.prompts import load_prompts
    from safetyscope.model import ArchitectureMap, load_model
    from safetyscope.outputs import check_output
    from safetyscope.paths import atomic_output_dir

    parse_components(components)
    corr = Corruption(corruption, corrupt_positions, noise_scale, seed, key, str(str_words) if str_words else None)
    if out is not None:  # before any work; never over or inside an input, whatever --force says
        check_output(out, force=force, kind="dir", inputs=[model, clean, corrupt, arch_map])
    clean_set = load_prompts(clean, column=column)
    corrupt_set = load_prompts(corrupt, column=column) if corrupt is not None else None
    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    lm = load_model(model, dtype=dtype, arch_map=amap, trust_remote_code=trust_remote_code)
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[lm.path])
    result = patching_sweep(
        lm, list(clean_set.prompts), list(corrupt_set.prompts) if corrupt_set else None, components=components,
        layers=parse_layers(layers, lm.n_layers), positions=positions, heads=heads, metric=metric, answer=answer,
        wrong=wrong, mode=mode, corruption=corr, joint=joint, token_budget=token_budget, chat=not raw)
    if out is not None:
        with atomic_output_dir(out, force) as tmp:
            result.save(tmp / "results.json")
            for comp, svg in sweep_figures(result).items():
                (tmp / f"heatmap_{comp}.svg").write_text(svg, encoding="utf-8")
    if as_json:
        print(json.dumps(result.to_dict(), allow_nan=False))
        return
    console.print(f"{result.metric}: clean {result.clean_metric:.4g}, corrupted {result.corrupted_metric:.4g} "
                  f"({result.n_pairs} pairs, {len(result.scores)} cells, {result.provenance['forward_passes']} "
                  f"forward passes, mode {result.mode}, corruption {result.corruption})")
    base = 0.0 if result.mode == "denoise" else 1.0  # the recovery of an unimportant cell

    def effect(s: Any) -> float:
        return abs(s.recovery - base) if s.recovery is not None else abs(s.value - result.clean_metric)

    best = sorted(result.scores, key=effect, reverse=True)[:8]
    for s in best:
        rec = "" if s.recovery is None else f"  recovery {s.recovery:+.3f}"
        head = "" if s.head is None else f" head {s.head}"
        console.print(f"  {s.component} L{s.layer}{head} pos {s.position}: {s.value:.4g}{rec}")
    if out is not None:
        console.print(f"[green]wrote[/] {literal(out)}/results.json and heatmaps")
