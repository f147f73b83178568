"""CLI: `directions convert` between peers' direction formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from safetyscope.cli._app import JsonOpt, console, directions_app, literal, user_errors


@directions_app.command("convert")
@user_errors
def directions_convert(
    inp: Annotated[
        Path, typer.Argument(help="Direction file or folder, any supported format (detected from content).")
    ],
    out: Annotated[Path, typer.Argument(help="Output file (a folder for refusal-direction).")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="safetyscope, llamacpp, svec, refusal-direction or steering-vectors (default for a "
            ".safetensors OUT: safetyscope).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model the vectors are for (its config gives the family llamacpp/svec record, and checks width).",
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            help="Pick this layer from a multi-layer input, or give a site-less direction one (5 or 5.resid_post).",
        ),
    ] = None,
    pos: Annotated[
        int | None,
        typer.Option(
            "--pos", help="Token position for refusal-direction when the input does not record it (e.g. -1)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing OUT.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert directions between formats; magnitude and sign of each added vector are kept, and the output is read back to check."""
    from safetyscope.interop import convert

    res = convert(inp, out, to, model=model, layer=layer, pos=pos, force=force)
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    console.print(
        f"[green]wrote[/] {literal(res.out)} ({res.target_format}) from {literal(res.source)} "
        f"({res.source_format}): {res.n_directions} direction(s) at {literal(', '.join(res.sites))}; "
        f"read back: max abs error {res.roundtrip_max_abs:.2e}, relative {res.roundtrip_max_rel:.2e}"
    )
