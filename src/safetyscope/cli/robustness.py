"""``safetyscope robustness``: the cross-model direction-ablation matrix (see docs/training.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safetyscope.cli._app import app, console, literal, user_errors


def _cell(rate: float | None, ci: list[float] | None) -> str:
    return "n/a (width)" if rate is None or ci is None else f"{rate:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


@app.command("robustness")
@user_errors
def robustness_command(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Models (organism specs, names or HF directories); same width for cross entries."
        ),
    ],
    n_test: Annotated[int, typer.Option("--n-test", min=2, help="Held-out harmful prompts per cell.")] = 100,
    n_train: Annotated[
        int, typer.Option("--n-train", min=2, help="Prompts per set for the direction and spectrum.")
    ] = 64,
    n_val: Annotated[int, typer.Option("--n-val", min=2, help="Prompts per set for selection.")] = 32,
    no_layers: Annotated[
        bool, typer.Option("--no-layers", help="Skip the self-ablation-by-layer curves.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Prompt split and random-control seed.")] = 0,
    defenses: Annotated[
        bool,
        typer.Option(
            "--defenses",
            help="Also orthogonalization, harmful compliance, harmless refusal and perplexity (docs/defenses.md).",
        ),
    ] = False,
    selection: Annotated[
        str,
        typer.Option(
            "--selection",
            help="score (bypass/induce/KL rule), judged (the candidate whose ablation makes the model "
            "comply most on validation prompts) or auto (score, else judged).",
        ),
    ] = "score",
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-new-tokens",
            min=1,
            help="Tokens generated per completion (default 16 organisms, 48 others; extended refusals need ~40).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON result to this file.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (models, matrix, ci, control, spectra, ...)."),
    ] = False,
) -> None:
    """Refusal of each model with each model's refusal direction ablated, beside a random control."""
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.pipelines.robustness import robustness

    if out is not None:
        check_output(out, force=force, kind="file")
    res = robustness(
        models,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        by_layer=not no_layers,
        seed=seed,
        progress=not as_json,
        defenses=defenses,
        max_new_tokens=max_new_tokens,
        selection=selection,
    )
    data = res.to_dict()
    if out is not None:
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        print(json.dumps(data))
        return
    table = Table(title="held-out harmful refusal with direction j ablated (rows: model i)")
    table.add_column("model i")
    for j in range(len(models)):
        table.add_column(f"dir {j}")
    table.add_column("no edit")
    table.add_column("random control")
    for i, name in enumerate(models):
        b, c = res.baseline[i], res.control[i]
        table.add_row(
            literal(f"{i}: {name}"),
            *[_cell(res.matrix[i][j], res.ci[i][j]) for j in range(len(models))],
            _cell(b["rate"], [b["ci_low"], b["ci_high"]]),
            _cell(c["rate"], [c["ci_low"], c["ci_high"]]),
        )
    console.print(table)
    for i, s in enumerate(res.spectra):
        line = f"{i}: spectrum at layer {s['layer']} (eoi {s['position']}): top-1 {s['top1']:.3f}, top-2 {s['top2']:.3f}"
        if res.self_ablation[i]:
            line += "; self-ablation by layer: " + ", ".join(
                f"L{r['layer']} " + ("n/a" if r["rate"] is None else f"{r['rate']:.2f}")
                for r in res.self_ablation[i]
            )
        console.print(literal(line))
    if res.health:
        _defense_table(models, res)


def _rate(d: dict | None) -> str:
    return "n/a" if d is None or d["rate"] is None else _cell(d["rate"], [d["ci_low"], d["ci_high"]])


def _defense_table(models: list[str], res: object) -> None:
    table = Table(
        title="defenses: harmful refusal / compliance under weight orthogonalization; harmless health"
    )
    for col in (
        "model",
        "orthogonalized: refusal",
        "compliance",
        "random control: refusal",
        "all candidates ablated: refusal",
        "random subspace: refusal",
        "harmless refusal",
        "harmless compliance",
        "answer perplexity",
    ):
        table.add_column(col)
    for i, name in enumerate(models):
        o, h = res.orthogonalized[i], res.health[i]  # type: ignore[attr-defined]
        table.add_row(
            literal(f"{i}: {name}"),
            _rate(o["direction"]["refusal"]),
            _rate(o["direction"]["compliance"]),
            _rate(o["control"]["refusal"]),
            _rate(o["subspace_ablation"]["subspace"]["refusal"]),
            _rate(o["subspace_ablation"]["control"]["refusal"]),
            _rate(h["harmless"]["refusal"]),
            _rate(h["harmless"]["compliance"]),
            f"{h['perplexity']:.3f}",
        )
    console.print(table)
