"""CLI: ``safetyscope attribute``, attribution patching and circuits (AtP, EAP, EAP-IG, exact edge patching)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from safetyscope.cli._app import ArchMapOpt, DtypeOpt, JsonOpt, TrustOpt, app, console, literal, user_errors


@app.command("attribute")
@user_errors
def attribute_cmd(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    clean: Annotated[
        Path, typer.Option("--clean", help="Clean prompts (show the behaviour): .txt/.jsonl/.csv/.parquet.")
    ],
    corrupt: Annotated[
        Path, typer.Option("--corrupt", help="Corrupted prompts, one per clean prompt, same token length.")
    ],
    method: Annotated[
        str, typer.Option(help="atp (nodes), eap, eap-ig or exact (edge patching of every edge).")
    ] = "eap-ig",
    ig_steps: Annotated[int, typer.Option("--ig-steps", min=1, help="EAP-IG interpolation steps m.")] = 5,
    variant: Annotated[
        str, typer.Option(help="EAP-IG interpolation: inputs (embeddings) or activations (per block).")
    ] = "inputs",
    metric: Annotated[
        str | None,
        typer.Option(
            help="top (default: logit of the clean run's top token minus the corrupted run's), logit_diff "
            "(needs --answer/--wrong) or refusal."
        ),
    ] = None,
    answer: Annotated[
        str | None, typer.Option(help="Answer token text for logit_diff (its first token).")
    ] = None,
    wrong: Annotated[str | None, typer.Option(help="Wrong token text for logit_diff.")] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Edges in the reported circuit (nodes for atp).")
    ] = 50,
    random_draws: Annotated[
        int, typer.Option("--random-draws", min=0, help="Random circuits of the same size (control).")
    ] = 5,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the faithfulness evaluation.")] = False,
    scrub_draws: Annotated[int, typer.Option(
        "--scrub-draws", min=0, help="Resamplings for the scrubbed loss of the top circuit (0: skip).")] = 1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Prompt pairs per forward pass.")
    ] = 8,
    raw: Annotated[
        bool, typer.Option("--raw", help="Tokenize the prompts as given (no chat template).")
    ] = False,
    column: Annotated[str | None, typer.Option(help="Text field of jsonl/csv/parquet rows.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for graph.json, circuit.json, faithfulness.json and top_edges.svg."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Which components and connections carry the difference between clean and corrupted prompts.

    Scores every edge of the model's computational graph (input, heads, MLPs, logits) with EAP
    or EAP-IG (one backward pass per step), or by exact edge patching, or every node with AtP;
    then evaluates the top circuits' faithfulness against random circuits of the same size.
    --json prints one object with `edges` ({src, dst, score}), `faithfulness` ({n_edges, value}),
    `method` and `seconds`.
    """
    from safetyscope.circuits import METHODS, attribute
    from safetyscope.data.prompts import load_prompts
    from safetyscope.errors import SafetyscopeError
    from safetyscope.model import ArchitectureMap, load_model
    from safetyscope.outputs import check_output
    from safetyscope.paths import atomic_output_dir

    if method not in METHODS:
        raise SafetyscopeError(f"--method {method!r} is not one of {', '.join(METHODS)}.")
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[model, clean, corrupt, arch_map])
    clean_set, corrupt_set = load_prompts(clean, column=column), load_prompts(corrupt, column=column)
    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    lm = load_model(model, dtype=dtype, arch_map=amap, trust_remote_code=trust_remote_code)
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[lm.path])
    result = attribute(
        lm,
        list(clean_set.prompts),
        list(corrupt_set.prompts),
        method=method,
        steps=ig_steps,
        variant=variant,
        metric=metric,
        answer=answer,
        wrong=wrong,
        top=top,
        random_draws=random_draws,
        evaluate=not no_eval,
        scrub_draws=scrub_draws,
        batch_size=batch_size,
        chat=not raw,
    )
    if out is not None:
        with atomic_output_dir(out, force) as tmp:
            result.save(tmp)
    if as_json:
        print(json.dumps(result.summary(), allow_nan=False))
        return
    info = result.graph["info"]
    console.print(
        f"{result.method} on {info['family']}: {info['n_edges']} edges, {result.metric['name']} "
        f"clean {result.clean_metric:.4g}, corrupted {result.corrupt_metric:.4g} "
        f"({result.provenance['n_pairs']} pairs, {result.seconds:.1f} s)"
    )
    rows = result.nodes[:10] if result.nodes is not None else result.top_edges(10)
    for r in rows:
        name = r["node"] if "node" in r else f"{r['src']} -> {r['dst']}"
        console.print(f"  {literal(name)}: {r['score']:+.4g}")
    c = result.circuit
    if c:

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        console.print(
            f"top circuit ({c['k']} edges): faithfulness {fmt(c['sufficiency'])}, necessity "
            f"{fmt(c['necessity'])}; random circuits of the same size: mean {fmt(c['random_mean'])}, "
            f"max {fmt(c['random_max'])}; random connected circuits: mean {fmt(c['random_connected_mean'])}, "
            f"max {fmt(c['random_connected_max'])}; CPR {fmt(c.get('cpr'))}, CMD {fmt(c.get('cmd'))}"
        )
        if "scrubbed_loss_recovered" in c:
            console.print(
                f"scrubbed loss (resample ablation outside the circuit): loss recovered "
                f"{fmt(c['scrubbed_loss_recovered'])}; random circuits of the same size: "
                f"{fmt(c['scrubbed_random_mean'])}"
            )
    if out is not None:
        console.print(
            f"[green]wrote[/] {literal(out)}/graph.json, circuit.json, faithfulness.json, top_edges.svg"
        )
