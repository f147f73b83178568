"""``safetyscope train``: SSFT, AT, LAT, circuit breakers or extended refusal (docs/training.md, docs/defenses.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safetyscope.cli._app import app, console, literal, user_errors


@app.command("train")
@user_errors
def train_command(
    model: Annotated[
        str,
        typer.Argument(
            help="Model to safety-train: organism spec, pulled name or HF directory (never modified)."
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="ssft (supervised), at (PGD on input embeddings), lat (PGD on the residual stream), "
            "circuit-breakers (representation rerouting) or extended-refusal (refusals that explain).",
        ),
    ] = "ssft",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output HF directory (required unless --cache).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue from the last checkpoint of an interrupted run into --out."),
    ] = False,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimiser steps.")] = 150,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (warm-up then cosine).")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Examples per step.")] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Seeds data order, adversary starts and dropout.")] = 0,
    epsilon: Annotated[
        float,
        typer.Option(
            "--epsilon", help="AT/LAT: L2 budget per request token, relative to its clean norm at the site."
        ),
    ] = 0.5,
    adv_steps: Annotated[
        int, typer.Option("--adv-steps", min=1, help="AT/LAT: PGD steps per training step.")
    ] = 6,
    layer: Annotated[
        int | None,
        typer.Option(
            "--layer", help="LAT: block whose resid_pre is attacked (default: about a quarter of the depth)."
        ),
    ] = None,
    cb_layers: Annotated[
        str | None,
        typer.Option(
            "--cb-layers",
            help="circuit-breakers: blocks whose resid_pre is rerouted, e.g. '1,2' (default: ~1/3, ~2/3 depth).",
        ),
    ] = None,
    cb_loss: Annotated[
        str, typer.Option("--cb-loss", help="circuit-breakers: relu-cosine (the paper's) or cosine.")
    ] = "relu-cosine",
    cb_alpha: Annotated[
        float, typer.Option("--cb-alpha", help="circuit-breakers: loss scale alpha of the schedule.")
    ] = 1.0,
    cb_retain: Annotated[
        float,
        typer.Option(
            "--cb-retain", help="circuit-breakers: retain-loss multiplier lambda (1: the paper's schedule)."
        ),
    ] = 1.0,
    n_train: Annotated[
        int | None,
        typer.Option(
            "--n-train", help="Training examples to build (organism corpus) or prompts per set (real models)."
        ),
    ] = None,
    n_eval: Annotated[
        int | None, typer.Option("--n-eval", help="Held-out prompts per set for the card (organisms: 200).")
    ] = None,
    lora: Annotated[
        bool, typer.Option("--lora", help="Train LoRA adapters (peft) instead of every weight; real models.")
    ] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1, help="LoRA rank.")] = 8,
    lora_alpha: Annotated[float, typer.Option("--lora-alpha", help="LoRA alpha.")] = 16.0,
    save_adapters: Annotated[
        bool, typer.Option("--save-adapters", help="Save LoRA adapters instead of merged weights.")
    ] = False,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=0, help="Steps between checkpoints (0: none).")
    ] = 50,
    cache: Annotated[
        bool, typer.Option("--cache", help="Save as the cached model MODEL-METHOD (loadable by that name).")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, ... (default: cuda when available).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training card as JSON.")] = False,
) -> None:
    """Safety-train MODEL into a new, loadable HF directory with a training card."""
    from safetyscope.errors import OptionError
    from safetyscope.pipelines.training import LoraOptions, run_training, trained_path
    from safetyscope.training import TrainingConfig

    if out is None and not cache:
        raise OptionError("Give --out DIR (or --cache to save as the cached model MODEL-METHOD).")
    if out is not None and cache:
        raise OptionError("Give --out or --cache, not both.")
    target = out if out is not None else trained_path(model, method)
    layers = None
    if cb_layers:
        try:
            layers = tuple(int(x) for x in cb_layers.split(","))
        except ValueError as exc:
            raise OptionError(f"--cb-layers {cb_layers!r}: give comma-separated block indices.") from exc
    cfg = TrainingConfig(
        method=method,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        epsilon=epsilon,
        adv_steps=adv_steps,
        layer=layer,
        checkpoint_every=checkpoint_every,
        cb_layers=layers,
        cb_loss=cb_loss,
        cb_alpha=cb_alpha,
        cb_retain=cb_retain,
    )
    lo = LoraOptions(lora_rank, lora_alpha, merge=not save_adapters) if lora else None
    path, card = run_training(
        model,
        method,
        target,
        force=force,
        resume=resume,
        config=cfg,
        lora=lo,
        n_train=n_train,
        n_eval=n_eval,
        device=device,
        progress=not as_json,
    )
    if as_json:
        print(json.dumps(card.to_dict() | {"out": str(path)}, indent=2))
        return
    table = Table(title=literal(f"safetyscope train {model} --method {method}"))
    for col in ("held-out set", "refusal before", "refusal after", "target"):
        table.add_column(col)
    for name in ("harmful", "harmless"):
        b, a = card.before[name], card.after[name]
        op, t = card.targets[name]
        table.add_row(
            name,
            f"{b['rate']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}]",
            f"{a['rate']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}]",
            f"{op} {t}",
        )
    ppl = card.harmless_perplexity
    if ppl is not None:
        table.add_row(
            "harmless-answer perplexity",
            f"{ppl['before']:.3f}",
            f"{ppl['after']:.3f} (x{ppl['ratio']:.3f})",
            f"<= x{ppl['max_ratio']}",
        )
    console.print(table)
    console.print(
        literal(
            f"judge {card.judge}; train {card.train_seconds:.1f} s; total {card.total_seconds:.1f} s; "
            f"meets targets: {card.meets_targets}; saved {path}"
        )
    )
