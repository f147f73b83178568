"""CLI: ``safetyscope transfer fit|eval|scan`` (representation transfer between two models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safetyscope.cli._app import JsonOpt, app, console, literal, user_errors

transfer_app = typer.Typer(
    help="Map one model's residual stream into another's and carry a backdoor fix across.",
    no_args_is_help=True,
)
app.add_typer(transfer_app, name="transfer")

SrcArg = Annotated[str, typer.Argument(help="Source model spec, e.g. organism:small:0.")]
TgtArg = Annotated[str, typer.Argument(help="Target model spec, e.g. organism:deep:0 (same tokenizer).")]


def _rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "n/a"
    return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] ({r['k']}/{r['n']})"


@transfer_app.command("scan")
@user_errors
def scan_cmd(
    src: SrcArg,
    tgt: TgtArg,
    n_train: Annotated[int, typer.Option("--n-prompts", min=4, help="Prompts for paired activations.")] = 400,
    n_backdoor: Annotated[
        int, typer.Option("--n-backdoor", min=1, help="Triggered prompts for steerability.")
    ] = 100,
    min_steer: Annotated[
        float, typer.Option("--min-steer", min=0.0, max=1.0, help="A layer counts as steerable at this rate.")
    ] = 0.5,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the scan JSON here.")] = None,
    figures: Annotated[
        Path | None, typer.Option("--figures", help="Write r2/cka/steerability SVGs into this folder.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out / --figures.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Steerability by layer of both models, linear CKA and held-out ridge R^2 of every layer pair, a proposed pair."""
    from safetyscope import load_model
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.pipelines.transfer import run_scan, transfer_prompts

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[src, tgt])
    if figures is not None:
        check_output(figures, force=force, kind="dir", inputs=[src, tgt])
    s, t = load_model(src), load_model(tgt)
    rep = run_scan(s, t, transfer_prompts(s, t, n_train=n_train, n_eval=n_backdoor), min_steer=min_steer)
    d = rep.to_dict()
    if out is not None:
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(d, indent=1))
    if figures is not None:
        from safetyscope.pipelines.transfer_figures import scan_figures

        figures.mkdir(parents=True, exist_ok=True)
        for name, svg in scan_figures(d).items():
            (figures / f"{name}.svg").write_text(svg)
    if as_json:
        print(json.dumps(d))
        return
    sc = rep.scan
    table = Table("src \\ tgt", *[str(x) for x in sc.tgt_layers], title="held-out ridge R^2 (CKA)")
    for i, a in enumerate(sc.src_layers):
        table.add_row(str(a), *[f"{sc.r2[i][j]:.2f} ({sc.cka[i][j]:.2f})" for j in range(len(sc.tgt_layers))])
    console.print(table)
    for side in ("src", "tgt"):
        rows = rep.curves.get(side, {}).get("layers", [])
        console.print(
            f"steerability {side}: " + ", ".join(f"L{r['layer']} {_rate(r['steerability'])}" for r in rows)
        )
    console.print(
        f"proposed pair: source layer {sc.proposed[0]} -> target layer {sc.proposed[1]} ({literal(sc.rule)})"
    )


@transfer_app.command("fit")
@user_errors
def fit_cmd(
    src: SrcArg,
    tgt: TgtArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for map.safetensors, map.json, curve.json.")],
    src_layer: Annotated[
        int | None, typer.Option("--src-layer", min=0, help="Source layer L (default: proposed).")
    ] = None,
    tgt_layer: Annotated[
        int | None, typer.Option("--tgt-layer", min=0, help="Target layer M (default: proposed).")
    ] = None,
    kind: Annotated[str, typer.Option("--map", help="affine or autoencoder.")] = "autoencoder",
    method: Annotated[
        str | None, typer.Option("--fit", help="closed (affine only; its default) or sgd.")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="SGD steps.")] = 2000,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Token rows per SGD step.")] = 512,
    ridge: Annotated[
        float, typer.Option("--ridge", min=0.0, help="Relative ridge penalty of the closed form.")
    ] = 1e-3,
    hidden: Annotated[
        int | None, typer.Option("--hidden", min=1, help="Autoencoder width (default d_source).")
    ] = None,
    n_train: Annotated[int, typer.Option("--n-prompts", min=4, help="Prompts for paired activations.")] = 600,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the split, init and minibatches.")] = 0,
    device: Annotated[
        str | None, typer.Option("--device", help="Where to train the map (cpu, cuda).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Refit into an --out that holds a map.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fit a map from SRC layer L to TGT layer M on paired activations (resumes an interrupted SGD run)."""
    from safetyscope.pipelines.transfer_fit import run_fit
    from safetyscope.transfer import TrainConfig

    cfg = TrainConfig(steps=steps, lr=lr, batch_size=batch_size, seed=seed, log_every=max(1, steps // 20))
    res = run_fit(
        src,
        tgt,
        out,
        src_layer=src_layer,
        tgt_layer=tgt_layer,
        kind=kind,
        method=method,
        train=cfg,
        ridge=ridge,
        hidden=hidden,
        n_train=n_train,
        force=force,
        device=device,
    )
    if as_json:
        print(json.dumps(res))
        return
    f = res["final"]
    console.print(
        f"{kind} map L{res['map']['src']['layer']} -> L{res['map']['tgt']['layer']} written to {literal(out)}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in f.items() if isinstance(v, float))
    )


@transfer_app.command("eval")
@user_errors
def eval_cmd(
    map_dir: Annotated[Path, typer.Argument(help="Folder written by `safetyscope transfer fit`.")],
    n_backdoor: Annotated[int, typer.Option("--n-backdoor", min=1, help="Held-out triggered prompts.")] = 100,
    n_fidelity: Annotated[
        int, typer.Option("--n-fidelity", min=1, help="Held-out prompts for fidelity and KL.")
    ] = 60,
    tokens: Annotated[
        int, typer.Option("--max-new-tokens", min=1, help="Tokens generated per steering run.")
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the random control.")] = 0,
    positions: Annotated[
        str,
        typer.Option(
            "--positions",
            help="Steer at the trigger tokens (trigger, the post's) "
            "or at every token from the trigger on (from_trigger).",
        ),
    ] = "trigger",
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Transfer rate (with random and mapped-trigger controls), the target's own rate, the inverse map's
    rate, fidelity (mapped vs mean-ablated) and KL of a fitted map."""
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.pipelines.transfer_eval import run_eval

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[map_dir])
    res = run_eval(
        map_dir,
        n_backdoor=n_backdoor,
        n_fidelity=n_fidelity,
        max_new_tokens=tokens,
        seed=seed,
        positions=positions,
    )
    d = res.to_dict()
    if out is not None:
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(d, indent=1))
    if as_json:
        print(json.dumps(d))
        return
    table = Table(
        "measure", "value", title=literal(f"transfer {d['map']['src']['spec']} -> {d['map']['tgt']['spec']}")
    )
    for k in (
        "transfer_rate",
        "transfer_rate_random_control",
        "mapped_trigger_control",
        "target_own_rate",
        "backdoored_made_safe",
        "inverse_transfer_rate",
    ):
        table.add_row(k, _rate(d[k]))
    fm, fa = d["fidelity"]["mapped"], d["fidelity"]["mean_ablated"]
    table.add_row("fidelity ROUGE-L mapped / mean", f"{fm['rouge_l']:.3f} / {fa['rouge_l']:.3f}")
    table.add_row("exact match mapped / mean", f"{_rate(fm['exact_match'])} / {_rate(fa['exact_match'])}")
    table.add_row("KL mapped / mean", f"{d['kl']['mapped']:.4f} / {d['kl']['mean_ablated']:.4f}")
    console.print(table)
