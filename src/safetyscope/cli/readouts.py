"""CLI for readouts: ``safetyscope probes``, ``safetyscope discrepancy``, ``safetyscope monitor fit | score``."""

from __future__ import annotations

import json
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
    user_errors,
)
from safetyscope.errors import SafetyscopeError

monitor_app = typer.Typer(
    help="Mahalanobis out-of-distribution monitor against the harmless distribution.", no_args_is_help=True
)
app.add_typer(monitor_app, name="monitor")

ModelArg = Annotated[str, typer.Argument(help="Model spec (registry name, organism spec, HF dir or hub id).")]
LayersOpt = Annotated[str, typer.Option("--layers", help="Layers: all, mid, 3, 0,4,8, 2-5, -1.")]
NTrainOpt = Annotated[int, typer.Option("--n-train", min=2, help="Training prompts per class.")]
NValOpt = Annotated[int, typer.Option("--n-val", min=2, help="Validation prompts per class.")]
NTestOpt = Annotated[int, typer.Option("--n-test", min=2, help="Held-out test prompts per class.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of splits, fits and controls.")]


def _setup(
    model: str,
    dtype: str,
    harmful: Path | None,
    harmless: Path | None,
    layers: str,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
):
    from safetyscope.activations import parse_layers
    from safetyscope.model import load_model
    from safetyscope.pipelines.refusal import refusal_prompts

    lm = load_model(model, dtype=dtype)
    prompts = refusal_prompts(lm, harmful, harmless, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed)
    return lm, prompts, parse_layers(layers, lm.n_layers)


def _write(out: Path | None, data: dict) -> None:
    if out is not None:
        out.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        console.print(f"[green]saved[/] {literal(out)}")


@app.command("probes")
@user_errors
def probes(
    model: ModelArg,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    layers: LayersOpt = "all",
    kinds: Annotated[
        str, typer.Option("--kinds", help="Comma list of linear, poly2, poly3, mlp, suffix.")
    ] = ("linear,poly2,poly3,mlp,suffix"),
    suffix: Annotated[
        str | None,
        typer.Option(
            "--suffix",
            help="Classification suffix (default: a harmfulness question the tokenizer can spell).",
        ),
    ] = None,
    rank: Annotated[int, typer.Option("--rank", min=1, help="CP rank of each polynomial order.")] = 4,
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="Hidden units of the MLP probe.")] = 32,
    n_train: NTrainOpt = 64,
    n_val: NValOpt = 32,
    n_controls: Annotated[
        int, typer.Option("--n-controls", min=1, help="Shuffled-label probes per layer.")
    ] = 3,
    seed: SeedOpt = 0,
    out: OutOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Linear, truncated-polynomial, MLP and suffix probes by layer, each with its shuffled-label control."""
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.readouts import probe_table

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[model, harmful, harmless])
    lm, prompts, chosen = _setup(model, dtype, harmful, harmless, layers, n_train, n_val, 2, seed)
    table = probe_table(
        lm,
        prompts,
        chosen,
        kinds=[k.strip() for k in kinds.split(",") if k.strip()],
        suffix=suffix,
        rank=rank,
        hidden=hidden,
        n_controls=n_controls,
        seed=seed,
        progress=not as_json,
    )
    data = table.to_dict() | {"rows": table.rows()}
    _write(out, data)
    if as_json:
        print(json.dumps(data, allow_nan=False))
        return
    t = Table(
        "kind",
        "layer",
        "accuracy (95% CI)",
        "AUC",
        "control acc",
        "selectivity",
        title=f"probes at resid_pre, eoi:-1 ({lm.spec})",
    )
    for r in table.rows():
        t.add_row(
            r["kind"],
            str(r["layer"]),
            f"{r['accuracy']:.3f} ({r['accuracy_ci'][0]:.2f}, {r['accuracy_ci'][1]:.2f})",
            f"{r['auc']:.3f}",
            f"{r['control_accuracy']:.3f}",
            f"{r['selectivity']:+.3f}",
        )
    console.print(t)
    if table.suffix:
        console.print(f"suffix: {literal(table.suffix)}")


@app.command("discrepancy")
@user_errors
def discrepancy(
    model: ModelArg,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    layers: LayersOpt = "all",
    n_train: NTrainOpt = 64,
    n_val: NValOpt = 32,
    n_test: NTestOpt = 50,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", min=1, help="Tokens generated per answer.")
    ] = 24,
    selection: Annotated[
        str, typer.Option("--selection", help="Causal selection mode: exhaustive or fast.")
    ] = ("exhaustive"),
    l2: Annotated[
        float, typer.Option("--l2", min=0.0, help="L2 strength of the logistic probe (standardised units).")
    ] = 1e-2,
    seed: SeedOpt = 0,
    out: OutOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Predict-control discrepancy: probe, difference-in-means and causally selected directions by layer."""
    from safetyscope.causal.discrepancy import DIRECTIONS, predict_control
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.refusal import judge_for

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[model, harmful, harmless])
    lm, p, chosen = _setup(model, dtype, harmful, harmless, layers, n_train, n_val, n_test, seed)
    rep = predict_control(
        lm,
        p.harmful_train,
        p.harmless_train,
        p.harmful_val,
        p.harmless_val,
        p.harmful_test,
        p.harmless_test,
        judge_for(lm),
        layers=chosen,
        selection_mode=selection,
        max_new_tokens=max_new_tokens,
        seed=seed,
        l2=l2,
    )
    data = rep.to_dict()
    _write(out, data)
    if as_json:
        print(json.dumps(data, allow_nan=False))
        return

    def pc(r) -> str:
        return f"{100 * (r.rate or 0):.0f}% [{100 * r.ci_low:.0f}, {100 * r.ci_high:.0f}]"

    t = Table(
        "layer",
        "direction",
        "AUC",
        "d'",
        "harmful refusal, ablated",
        "harmless refusal, added",
        title=f"predict vs control (baseline harmful {pc(rep.baseline_harmful)}, "
        f"harmless {pc(rep.baseline_harmless)})",
    )
    for row in rep.layers:
        for name in (*DIRECTIONS, "random"):
            s = row.scores[name]
            t.add_row(
                str(row.layer),
                name + (f" (eoi {row.selected_position})" if name == "selected" else ""),
                f"{s.auc:.3f}",
                f"{s.dprime:.2f}",
                pc(s.ablated_refusal),
                pc(s.induced_refusal),
            )
    console.print(t)
    for row in rep.layers:
        console.print(
            f"layer {row.layer} cosines: " + ", ".join(f"{k} {v:+.2f}" for k, v in row.cosines.items())
        )
    rho = "n/a" if rep.spearman is None else f"{rep.spearman:+.2f}"
    console.print(
        f"Spearman rho(d', control effect) over directions x layers: {rho} (the claim predicts < 0)"
    )
    console.print(f"paper: {rep.paper_claim}")


@monitor_app.command("fit")
@user_errors
def monitor_fit_cmd(
    model: ModelArg,
    out: Annotated[
        Path, typer.Option("--out", help="Monitor file (.safetensors; a .json sidecar is written beside).")
    ],
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    layers: LayersOpt = "all",
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, help="Layers in the ensemble (best by validation AUROC).")
    ] = 3,
    quantile: Annotated[
        float,
        typer.Option("--quantile", help="Alarm threshold: this quantile of harmless validation scores."),
    ] = 0.95,
    normalize: Annotated[
        bool, typer.Option("--normalize", help="L2-normalise activations first (Mahalanobis++).")
    ] = False,
    n_train: NTrainOpt = 64,
    n_val: NValOpt = 32,
    n_test: NTestOpt = 100,
    n_controls: Annotated[int, typer.Option("--n-controls", min=1, help="Shuffled-label reruns.")] = 3,
    seed: SeedOpt = 0,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Fit a Mahalanobis monitor on harmless prompts; pick layers by AUROC; report test AUROC with its control."""
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.readouts import monitor_fit

    if out.suffix != ".safetensors":
        raise SafetyscopeError(
            f"--out must end in .safetensors (the JSON sidecar goes beside it), got {out}."
        )
    check_output(out, force=force, kind="file", inputs=[model, harmful, harmless])
    check_output(out.with_suffix(".json"), force=force, kind="file", inputs=[model, harmful, harmless])
    lm, prompts, chosen = _setup(model, dtype, harmful, harmless, layers, n_train, n_val, n_test, seed)
    mon, rep = monitor_fit(
        lm,
        prompts,
        chosen,
        top_k=top_k,
        quantile=quantile,
        normalize=normalize,
        n_controls=n_controls,
        seed=seed,
        progress=not as_json,
    )
    mon.provenance["report"] = rep.to_dict()
    mon.save(out)
    if as_json:
        print(json.dumps(rep.to_dict() | {"monitor": str(out)}, allow_nan=False))
        return
    t = Table(
        "layer",
        "val AUROC",
        "test AUROC",
        "control AUROC",
        "ensemble",
        title=f"Mahalanobis monitor ({lm.spec})",
    )
    for x in rep.layers:
        t.add_row(
            str(x.layer),
            f"{x.val_auroc:.3f}",
            f"{x.test_auroc:.3f}",
            f"{x.control_auroc:.3f}",
            "yes" if x.in_ensemble else "",
        )
    console.print(t)
    console.print(
        f"ensemble {rep.ensemble}: test AUROC {rep.ensemble_auroc:.3f} (shuffled-label control "
        f"{rep.control_ensemble_auroc:.3f}); at the threshold: harmful flagged {rep.tpr.rate:.2f} "
        f"[{rep.tpr.ci_low:.2f}, {rep.tpr.ci_high:.2f}], harmless flagged {rep.fpr.rate:.2f} "
        f"[{rep.fpr.ci_low:.2f}, {rep.fpr.ci_high:.2f}]"
    )
    console.print(f"[green]saved[/] {literal(out)} (+ {literal(out.with_suffix('.json'))})")


@monitor_app.command("score")
@user_errors
def monitor_score_cmd(
    model: ModelArg,
    monitor: Annotated[Path, typer.Option("--monitor", help="Monitor file from `safetyscope monitor fit`.")],
    prompts: Annotated[Path, typer.Option("--prompts", help="Prompt file: .txt, .jsonl, .csv or .parquet.")],
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Score prompts with a saved monitor: ensemble score (harmless z-units), flag, per-layer distance."""
    from safetyscope.analysis.mahalanobis import MahalanobisMonitor
    from safetyscope.data.prompts import load_prompts
    from safetyscope.model import load_model
    from safetyscope.pipelines.readouts import monitor_score

    mon = MahalanobisMonitor.load(monitor)
    pset = load_prompts(prompts)
    lm = load_model(model, dtype=dtype)
    rows = monitor_score(lm, mon, list(pset.prompts))
    if as_json:
        print(
            json.dumps(
                {"threshold": mon.threshold, "ensemble": mon.ensemble, "scores": rows}, allow_nan=False
            )
        )
        return
    t = Table(
        "score", "flagged", "prompt", title=f"monitor {literal(monitor)} (threshold {mon.threshold:.2f})"
    )
    for r in rows:
        t.add_row(f"{r['score']:+.2f}", "FLAG" if r["flagged"] else "", literal(r["prompt"][:70]))
    console.print(t)
