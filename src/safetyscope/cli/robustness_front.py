"""``safetyscope robustness-front``: the refusal-vs-KL Pareto front of orthogonalization (docs/robustness-front.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safetyscope.cli._app import (
    DtypeOpt,
    HarmfulOpt,
    HarmlessOpt,
    JsonOpt,
    app,
    console,
    literal,
    load_direction,
    user_errors,
)


def _rate(r: dict) -> str:
    return (
        "n/a"
        if r["rate"] is None
        else f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] ({r['k']}/{r['n']})"
    )


@app.command("robustness-front")
@user_errors
def robustness_front_command(
    model: Annotated[str, typer.Argument(help="Model spec (organism, registry name, HF directory, .gguf).")],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder (results.json, front.png, study.journal).")
    ],
    trials: Annotated[
        int,
        typer.Option(
            "--trials", min=1, help="Complete trials wanted (a resumed study counts its earlier ones)."
        ),
    ] = 30,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n_train: Annotated[
        int, typer.Option("--n-train", min=2, help="Prompts per set for the candidate directions.")
    ] = 32,
    n_val: Annotated[
        int, typer.Option("--n-val", min=2, help="Held-out prompts per set scoring each trial.")
    ] = 16,
    n_test: Annotated[
        int, typer.Option("--n-test", min=2, help="Test prompts per set for the generation check.")
    ] = 32,
    check: Annotated[
        int, typer.Option("--check", min=1, help="Front points checked by generation and the judge.")
    ] = 5,
    sampler: Annotated[str, typer.Option(help="tpe (multivariate TPE) or nsga2.")] = "tpe",
    objective: Annotated[
        str, typer.Option(help="share (of positive refusal scores) or prob (mean refusal-token probability).")
    ] = "share",
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Trials scored together in one shared forward pass.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Sampler, prompt split and control seed.")] = 0,
    judge: Annotated[str | None, typer.Option(help="Judge (default: organism judge or linear).")] = None,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens generated per prompt in the check.")
    ] = 32,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per forward pass.")] = 32,
    direction: Annotated[
        Path | None,
        typer.Option(
            "--direction", help="A selected direction file: its full ablation is checked beside the front."
        ),
    ] = None,
    layer: Annotated[
        int | None, typer.Option(help="Layer to take from a multi-layer --direction file.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Delete an existing --out and start a new study.")
    ] = False,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Search orthogonalization parameters (direction index, attention/MLP kernels) for the lowest refusal at each KL.

    Resumes from OUT/study.journal; writes the Pareto front, its generation check and the worst case at KL 0.1 / 0.5.
    No model is written.
    """
    from safetyscope.errors import OptionError
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output, looks_ours
    from safetyscope.pipelines.robustness_front import STUDY_FILE, robustness_front

    if sampler not in ("tpe", "nsga2"):
        raise OptionError(f"--sampler {sampler!r}: use tpe or nsga2.")
    if objective not in ("share", "prob"):
        raise OptionError(f"--objective {objective!r}: use share or prob.")
    resuming = (out / STUDY_FILE).is_file() and not force
    check_output(
        out, force=force, kind="dir", inputs=[model, harmful, harmless, direction], resume_ok=resuming
    )
    selected = load_direction(direction, layer).vector.float() if direction is not None else None
    lm = load_model(model, dtype=dtype)
    check_output(out, force=force, kind="dir", inputs=[lm.path], resume_ok=resuming)
    if force and out.is_dir() and looks_ours(out):
        shutil.rmtree(out)
    if resuming and not as_json:
        console.print(f"resuming the study in {literal(out / STUDY_FILE)}")
    res = robustness_front(
        lm,
        out,
        harmful=harmful,
        harmless=harmless,
        trials=trials,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        check=check,
        sampler=sampler,
        objective=objective,
        batch=batch,
        seed=seed,
        judge=judge,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=not as_json,
        selected=selected,
    )
    data = res.to_dict()
    if as_json:
        print(json.dumps({k: data[k] for k in ("front", "checks", "worst_case", "provenance")}, default=str))
        return
    table = Table(
        title=f"Pareto front ({len(res.front)} of {len(res.trials)} trials; search on validation prompts)"
    )
    for col in ("trial", "refusal obj.", "KL", "dir. index", "attn max@peak", "mlp max@peak"):
        table.add_column(col)
    for t in res.front:
        p = t.params
        table.add_row(
            str(t.number),
            f"{t.refusal:.3f}",
            f"{t.kl:.4f}",
            f"{p.direction_index:.2f}",
            f"{p.attn.max_weight:.2f}@{p.attn.peak:.1f}",
            f"{p.mlp.max_weight:.2f}@{p.mlp.peak:.1f}",
        )
    console.print(table)
    checks = Table(title="checked by generation (test prompts)")
    for col in (
        "arm",
        "harmful refusal (95% CI)",
        "harmless refusal",
        "first-token KL",
        "incoherent (harmful)",
    ):
        checks.add_column(col)
    for c in data["checks"]:
        r = c["result"]
        kl = r["kl_first_token"]
        checks.add_row(
            c["name"],
            _rate(r["refusal"]["harmful"]),
            _rate(r["refusal"]["harmless"]),
            "-" if kl is None else f"{kl:.4f}",
            _rate(r["incoherent"]["harmful"]),
        )
    console.print(checks)
    for level, w in data["worst_case"].items():
        line = (
            f"worst case at KL <= {level}: none of the checked points"
            if w is None
            else f"worst case at KL <= {level}: trial {w['number']}, refusal {_rate(w['refusal'])}, KL {w['kl_first_token']:.4f}"
        )
        console.print(literal(line))
    console.print(f"[green]wrote[/] {literal(out)} (results.json, front.png, {STUDY_FILE})")
