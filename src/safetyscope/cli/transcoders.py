"""CLI commands for transcoders and attribution graphs: ``safetyscope transcoder train`` and ``safetyscope graph``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safetyscope.cli._app import DtypeOpt, JsonOpt, app, console, literal, user_errors

transcoder_app = typer.Typer(
    help="Per-layer transcoders: train them (MLP input -> MLP output, sparse).", no_args_is_help=True
)
app.add_typer(transcoder_app, name="transcoder")

ModelArg = Annotated[str, typer.Argument(help="Model spec (registry name, organism spec, HF dir or hub id).")]


@transcoder_app.command("train")
@user_errors
def transcoder_train(
    model: ModelArg,
    out: Annotated[
        Path,
        typer.Option("--out", help="Output folder: layer_L/ (SAELens format + labels.json), metrics.json."),
    ],
    layers: Annotated[str, typer.Option("--layers", help="Layers: all, 3, 0,4,8, 2-5, -1.")] = "all",
    cross_layer: Annotated[
        bool, typer.Option("--cross-layer", help="Cross-layer transcoders (not implemented yet).")
    ] = False,
    arch: Annotated[str, typer.Option("--arch", help="topk or jumprelu.")] = "topk",
    k: Annotated[int, typer.Option("--k", min=1, help="Active features per token (topk).")] = 16,
    d_sae: Annotated[int, typer.Option("--d-sae", min=1, help="Features per layer.")] = 1024,
    corpus: Annotated[
        str, typer.Option("--corpus", help="organism[:N], bundled, prompts:PATH, text:PATH or generate[:N].")
    ] = "organism",
    eval_corpus: Annotated[
        str | None, typer.Option("--eval-corpus", help="Corpus of the replacement-model metrics.")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps per layer.")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per step.")] = 512,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 1e-3,
    l0_coeff: Annotated[float, typer.Option("--l0-coeff", min=0.0, help="L0 coefficient (jumprelu).")] = 1e-2,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    dtype: DtypeOpt = "float32",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder of ours.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train one transcoder per layer; report FVU, L0 and (all layers) CE recovered, top-1 agreement and KL."""
    from safetyscope.activations.sites import parse_layers
    from safetyscope.errors import OptionError
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output
    from safetyscope.sae import TrainConfig
    from safetyscope.transcoders import fit_transcoders, save_transcoders

    if cross_layer:
        raise OptionError(
            "--cross-layer transcoders are not implemented yet; train per-layer transcoders "
            "(the default) instead."
        )
    check_output(out, force=force, kind="dir", inputs=[model])
    cfg = TrainConfig(
        architecture=arch,
        d_sae=d_sae,
        k=k,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        l0_coeff=l0_coeff,
        seed=seed,
    )
    lm = load_model(model, dtype=dtype)
    ts = fit_transcoders(
        lm,
        parse_layers(layers, lm.n_layers),
        cfg,
        corpus=corpus,
        eval_corpus=eval_corpus,
        progress=not as_json,
    )
    save_transcoders(ts, out, force=force)
    data = ts.metrics_dict()
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    table = Table(title=f"transcoders of {literal(model)} -> {literal(out)}")
    for col in ("layer", "FVU", "L0", "dead", "tokens/s"):
        table.add_column(col, justify="right")
    for m in ts.layers:
        table.add_row(
            str(m.layer),
            f"{m.fvu:.3f}",
            f"{m.l0:.1f}",
            f"{m.dead_fraction:.2f}",
            f"{ts.training[m.layer]['tokens_per_second']:.0f}",
        )
    console.print(table)
    if ts.replacement:
        r = ts.replacement
        console.print(
            f"replacement model: CE recovered {r['ce_loss_recovered']:.3f} (vs mean ablation "
            f"{r['ce_loss_recovered_vs_mean']:.3f}), top-1 agreement {r['top1_agreement']:.3f} "
            f"[{r['top1_agreement_ci'][0]:.3f}, {r['top1_agreement_ci'][1]:.3f}], KL {r['kl']:.3f} "
            f"(mean-ablation control: {r['control_mean_ablation_top1_agreement']:.3f}, "
            f"KL {r['control_mean_ablation_kl']:.3f})"
        )


@app.command("graph")
@user_errors
def graph(
    model: ModelArg,
    transcoders: Annotated[
        Path, typer.Option("--transcoders", help="Folder written by `safetyscope transcoder train`.")
    ],
    prompt: Annotated[str, typer.Option("--prompt", help="The prompt (chat-formatted unless --raw).")],
    target: Annotated[
        str | None, typer.Option("--target", help="Target token (default: the top next token).")
    ] = None,
    continuation: Annotated[
        str, typer.Option("--continuation", help="Response prefix appended after the prompt.")
    ] = "",
    raw: Annotated[bool, typer.Option("--raw", help="Do not apply the chat template.")] = False,
    node_threshold: Annotated[
        float, typer.Option("--node-threshold", help="Share of feature influence to keep.")
    ] = 0.8,
    edge_threshold: Annotated[
        float, typer.Option("--edge-threshold", help="Share of edge influence to keep.")
    ] = 0.98,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for graph.json, graph.png and graph.svg.")
    ] = None,
    dtype: DtypeOpt = "float32",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder of ours.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The pruned attribution graph of one prompt through the local replacement model (MLPs -> transcoders)."""
    from safetyscope.model import load_model
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.transcoders import load_transcoders, save_graph_figure, trace_prompt

    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[model, transcoders])
    ts = load_transcoders(transcoders)
    lm = load_model(model, dtype=dtype)
    tcs = {la: tc.to(lm.device).float() for la, tc in ts.transcoders.items()}
    pruned = trace_prompt(
        lm,
        tcs,
        prompt,
        target=target,
        continuation=continuation,
        raw=raw,
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        labels=ts.label_map(),
    )
    data = pruned.to_dict()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(out / "graph.json") as tmp:
            tmp.write_text(json.dumps(data, indent=1, default=str))
        save_graph_figure(pruned, out, "graph")
    if as_json:
        console.print_json(
            json.dumps(
                {
                    k: data[k]
                    for k in (
                        "nodes",
                        "edges",
                        "explained_share",
                        "error_share",
                        "replacement_top1_agreement",
                        "replacement_kl",
                        "tokens",
                        "logit_probs",
                    )
                },
                default=str,
            )
        )
        return
    feats = sorted([n for n in data["nodes"] if n["kind"] == "feature"], key=lambda n: -n["influence"])
    table = Table(
        title=f"attribution graph: {len(feats)} of {data['n_features_total']} features kept, "
        f"explained share {data['explained_share']:.3f}, error share {data['error_share']:.3f}"
    )
    for col in ("feature", "token", "activation", "influence", "label"):
        table.add_column(col)
    for n in feats[:15]:
        table.add_row(
            n["id"],
            literal(repr(n["token"])),
            f"{n['activation']:.2f}",
            f"{n['influence']:.3f}",
            literal(n["label"][-50:]),
        )
    console.print(table)
    console.print(
        f"replacement top-1 agreement on this prompt {data['replacement_top1_agreement']:.3f}, "
        f"KL {data['replacement_kl']:.3f}" + (f"; wrote {literal(out)}" if out else "")
    )
