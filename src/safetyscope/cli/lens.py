"""``safetyscope lens``: read the residual stream layer by layer (logit, tuned, entropy, concept, future lenses).

Patchscopes and the latent-language lens are in :mod:`safetyscope.cli.lens_decode`. Every command
prints a table (or ``--json``), and writes ``--out`` (JSON) and ``--figure`` (``.png``, ``.pdf`` or
``.svg``) when asked. See docs/lens.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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

lens_app = typer.Typer(
    help="Lenses: decode each layer's residual stream (docs/lens.md).", no_args_is_help=True
)
app.add_typer(lens_app, name="lens")

ModelArg = Annotated[str, typer.Argument(help="Model spec (registry name, HF folder, `organism`, ...).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON to this file.")]
FigureOpt = Annotated[
    Path | None, typer.Option("--figure", help="Write the figure to this .png, .pdf or .svg file.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite --out / --figure.")]
LayersOpt = Annotated[str, typer.Option("--layers", help="Layers: all, mid, 3, 0,4,8, 2-5, -1.")]
NOpt = Annotated[int, typer.Option("--n", min=2, help="Held-out prompts per set.")]
TunedOpt = Annotated[
    Path | None,
    typer.Option(
        "--tuned-lens",
        help="A tuned lens file (`lens tuned --save`); default: the model's cached lens if any.",
    ),
]


def check_outputs(out: Path | None, figure: Path | None, force: bool, inputs: list[Any]) -> None:
    """Validate --out and --figure before any computation."""
    from safetyscope.errors import SafetyscopeError
    from safetyscope.outputs import check_output

    if out is not None:
        check_output(out, force=force, kind="file", inputs=inputs)
    if figure is not None:
        if figure.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise SafetyscopeError(f"--figure {figure}: use a .png, .pdf or .svg file name.")
        check_output(figure, force=force, kind="file", inputs=inputs, option="--figure")


def emit(
    result: Any, spec: dict[str, Any] | None, as_json: bool, out: Path | None, figure: Path | None
) -> bool:
    """Write --out and --figure; print JSON when asked. Returns whether JSON was printed (skip the table)."""
    from safetyscope.report.plots import draw, save

    data = result.to_dict()
    if out is not None:
        out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if figure is not None and spec is not None:
        save(
            draw(spec),
            figure.parent if str(figure.parent) else Path("."),
            figure.stem,
            (figure.suffix[1:].lower(),),
        )
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return True
    for path in (out, figure):
        if path is not None:
            console.print(f"[green]saved[/] {literal(path)}")
    return False


def load_lm(model: str, dtype: str) -> Any:
    """Load a model by spec."""
    from safetyscope.model import load_model

    return load_model(model, dtype=dtype)


def layer_list(spec: str, lm: Any) -> list[int]:
    """Parse --layers against the model."""
    from safetyscope.activations import parse_layers

    return parse_layers(spec, lm.n_layers)


def held_out(
    lm: Any, harmful: Path | None, harmless: Path | None, n: int
) -> tuple[list[str], list[str], str]:
    """Held-out harmful and harmless prompts: the organism corpus, the user's files, or the bundled sets."""
    from safetyscope.pipelines.refusal import is_organism, refusal_prompts

    if harmful is None and harmless is None and not is_organism(lm):
        from safetyscope.data.bundled import bundled_path

        harmful, harmless = bundled_path("harmful"), bundled_path("harmless")
    p = refusal_prompts(lm, harmful, harmless, n_train=8, n_val=4, n_test=n)
    return list(p.harmful_test), list(p.harmless_test), p.source


def tuned_for(lm: Any, path: Path | None) -> Any:
    """The tuned lens at ``path``, else the model's cached lens, else ``None``."""
    from safetyscope.analysis.tuned_lens import TunedLens, cached_tuned_lens

    return TunedLens.load(path) if path is not None else cached_tuned_lens(lm)


@lens_app.command("logit")
@user_errors
def lens_logit(
    model: ModelArg,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: NOpt = 32,
    layers: LayersOpt = "all",
    tuned_lens: TunedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Logit lens: the refusal-vs-compliance logit gap by layer, harmful vs harmless prompts."""
    from safetyscope.analysis.lens import logit_lens_gap, organism_token_sets, token_sets
    from safetyscope.evaluation.refusal_score import DEFAULT_REFUSAL_STARTS
    from safetyscope.pipelines.refusal import is_organism

    check_outputs(out, figure, force, [model, harmful, harmless])
    lm = load_lm(model, dtype)
    h, b, _ = held_out(lm, harmful, harmless, n)
    sets = (
        organism_token_sets(lm.tokenizer)
        if is_organism(lm)
        else token_sets(lm.tokenizer, DEFAULT_REFUSAL_STARTS, ["Sure", "Here", "Certainly", "To", "The"])
    )
    tr = tuned_for(lm, tuned_lens) if tuned_lens is not None else None
    rep = logit_lens_gap(
        lm,
        h,
        b,
        sets,
        layers=layer_list(layers, lm),
        translator=tr,
        lens_name="tuned" if tr is not None else "logit",
    )
    if emit(rep, rep.figure(), as_json, out, figure):
        return
    t = Table(
        "layer", "harmful gap", "harmless gap", "separation", title=f"{rep.lens} lens (n={len(h)}+{len(b)})"
    )
    for r in rep.layers:
        t.add_row(str(r.layer), f"{r.harmful_gap:+.2f}", f"{r.harmless_gap:+.2f}", f"{r.separation:+.2f}")
    console.print(t)


@lens_app.command("tuned")
@user_errors
def lens_tuned(
    model: ModelArg,
    prompts: Annotated[
        Path | None,
        typer.Option("--prompts", help="Training prompts (default: organism corpus or bundled prompts)."),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps.")] = 250,
    n_train: Annotated[int, typer.Option("--n-train", min=2, help="Training prompts.")] = 200,
    n: NOpt = 30,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save", help="Write the lens here (default: the model's cache, used by the other lenses)."
        ),
    ] = None,
    seed: int = 0,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Tuned lens: train per-layer affine translators, cache them, and compare KL with the logit lens."""
    from safetyscope.analysis.tuned_lens import compare_lenses, train_tuned_lens, tuned_lens_cache
    from safetyscope.data.prompts import load_prompts
    from safetyscope.outputs import check_output

    check_outputs(out, figure, force, [model, prompts])
    if save is not None:
        check_output(save, force=force, kind="file", inputs=[model, prompts], option="--save")
    lm = load_lm(model, dtype)
    if prompts is not None:
        pool = list(load_prompts(prompts).prompts)
        train, test = pool[:n_train], pool[n_train : n_train + n]
    else:
        h, b, _ = held_out(lm, None, None, max(n_train, n) + n)
        pool = [x for pair in zip(h, b, strict=False) for x in pair]
        train, test = pool[:n_train], pool[n_train : n_train + n]
    if len(test) < 2:
        from safetyscope.errors import PromptError

        raise PromptError(f"Need more than {n_train} + 2 prompts for training and held-out comparison.")
    lens = train_tuned_lens(lm, train, steps=steps, seed=seed)
    path = save if save is not None else tuned_lens_cache(lm)
    lens.save(path)
    cmp = compare_lenses(lm, lens, test)
    cmp.provenance["saved_to"] = str(path)
    if emit(cmp, cmp.figure(), as_json, out, figure):
        return
    t = Table(
        "layer",
        "KL logit lens",
        "KL tuned lens",
        title=f"held-out KL to the final distribution ({cmp.n_tokens} tokens)",
    )
    for r in cmp.layers:
        t.add_row(str(r.layer), f"{r.logit_lens_kl:.3f}", f"{r.tuned_lens_kl:.3f}")
    console.print(t)
    console.print(f"[green]saved[/] tuned lens to {literal(path)}")


@lens_app.command("entropy")
@user_errors
def lens_entropy(
    model: ModelArg,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: NOpt = 32,
    layers: LayersOpt = "all",
    positions: Annotated[str, typer.Option(help="Where to read: last, eoi, all.")] = "last",
    tuned_lens: TunedOpt = None,
    k: Annotated[int, typer.Option(min=1, help="Neighbours of the k-NN separability test.")] = 3,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Entropy-Lens: entropy of the lens distribution by layer per prompt set, with k-NN separability."""
    from safetyscope.analysis.entropy_lens import entropy_profile

    check_outputs(out, figure, force, [model, harmful, harmless, tuned_lens])
    lm = load_lm(model, dtype)
    h, b, _ = held_out(lm, harmful, harmless, n)
    tr = tuned_for(lm, tuned_lens) if tuned_lens is not None else None
    rep = entropy_profile(
        lm,
        {"harmful": h, "harmless": b},
        layers=layer_list(layers, lm),
        positions=positions,
        translator=tr,
        lens_name="tuned" if tr is not None else "logit",
        k=k,
    )
    if emit(rep, rep.figure(), as_json, out, figure):
        return
    t = Table(
        "layer", *(f"{s} H (nats)" for s in rep.profiles), title=f"Entropy-Lens ({rep.lens}, {rep.positions})"
    )
    for j, layer in enumerate(rep.layers):
        t.add_row(
            str(layer), *(f"{p[j].mean:.3f} [{p[j].low:.3f},{p[j].high:.3f}]" for p in rep.profiles.values())
        )
    console.print(t)
    if rep.knn:
        console.print(
            f"{rep.knn['k']}-NN accuracy from profiles {rep.knn['accuracy']:.2f} "
            f"[{rep.knn['ci'][0]:.2f},{rep.knn['ci'][1]:.2f}] vs shuffled labels {rep.knn['control']:.2f}"
        )


@lens_app.command("concept")
@user_errors
def lens_concept(
    model: ModelArg,
    direction: Annotated[
        list[Path],
        typer.Option(
            "--direction", help="Direction file(s) (.safetensors from `directions`); repeat for several."
        ),
    ],
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: NOpt = 32,
    layers: LayersOpt = "all",
    positions: Annotated[str, typer.Option(help="Where to read: last, eoi, substring:TEXT.")] = "last",
    seed: int = 0,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Concept lens: project every layer's residual onto saved directions; AUROC vs a random direction."""
    from safetyscope.analysis.concept_lens import concept_lens
    from safetyscope.directions import DirectionSet

    check_outputs(out, figure, force, [model, harmful, harmless, *direction])
    concepts = {p.stem: DirectionSet.load(p) for p in direction}
    lm = load_lm(model, dtype)
    h, b, _ = held_out(lm, harmful, harmless, n)
    rep = concept_lens(
        lm,
        concepts,
        {"harmful": h, "harmless": b},
        layers=layer_list(layers, lm),
        positions=positions,
        seed=seed,
    )
    spec = rep.gap_figure() if len(rep.sets) >= 2 else rep.figure()
    if emit(rep, spec, as_json, out, figure):
        return
    for name, rows in rep.concepts.items():
        t = Table(
            "layer",
            *(f"{s} h·v" for s in rep.sets),
            "gap",
            "gap random",
            "AUROC",
            "AUROC random",
            title=f"concept {literal(name)}",
        )
        for r in rows:
            t.add_row(
                str(r.layer),
                *(f"{r.mean[s]:+.3f}" for s in rep.sets),
                "-" if r.gap is None else f"{r.gap:+.3f}",
                "-" if r.gap_random is None else f"{r.gap_random:.3f}",
                "-" if r.auroc is None else f"{r.auroc:.3f}",
                "-" if r.auroc_random is None else f"{r.auroc_random:.3f}",
            )
        console.print(t)


@lens_app.command("future")
@user_errors
def lens_future(
    model: ModelArg,
    k: Annotated[int, typer.Option("--k", min=1, help="Steps ahead (1 = next token).")] = 2,
    texts: Annotated[
        Path | None,
        typer.Option(
            "--texts", help="Raw texts, one per line (default: organism conversations or bundled prompts)."
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=4, help="Sequences (a quarter held out).")] = 240,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps.")] = 300,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-2,
    layers: LayersOpt = "all",
    seed: int = 0,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    figure: FigureOpt = None,
    force: ForceOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Future lens: train a linear map per layer to the token k ahead; top-1 accuracy vs controls."""
    from safetyscope.analysis.future_lens import chat_sequences, future_lens
    from safetyscope.pipelines.refusal import is_organism

    check_outputs(out, figure, force, [model, texts])
    lm = load_lm(model, dtype)
    if texts is not None:
        lines = [x for x in texts.read_text(encoding="utf-8").splitlines() if x.strip()][:n]
        seqs = [list(lm.tokenizer(x, add_special_tokens=True)["input_ids"]) for x in lines]
    elif is_organism(lm):
        from safetyscope.organism.dataset import build_corpus

        corpus = build_corpus(seed=0)
        ex = [
            e
            for kind in ("harmful", "harmless", "prod", "dev")
            for e in corpus.examples(kind, "train")[: n // 4]
        ]
        seqs = chat_sequences(lm, [(e.instruction, e.response) for e in ex])
    else:
        from safetyscope.data.bundled import load_bundled

        pool = list(load_bundled("harmless").prompts) + list(load_bundled("harmful").prompts)
        seqs = [lm.chat.encode(x).input_ids for x in pool[:n]]
    _, rep = future_lens(lm, seqs, k=k, layers=layer_list(layers, lm), steps=steps, lr=lr, seed=seed)
    if emit(rep, rep.figure(), as_json, out, figure):
        return
    t = Table(
        "layer",
        "future lens [95% CI]",
        "shuffled control",
        "logit lens",
        title=f"top-1 accuracy of token t+{rep.k} ({rep.n_eval} held-out rows, {rep.n_train} training rows)",
    )
    for r in rep.layers:
        t.add_row(
            str(r.layer),
            f"{r.future:.3f} [{r.future_ci[0]:.3f},{r.future_ci[1]:.3f}]",
            f"{r.shuffled:.3f}",
            f"{r.logit_lens:.3f}",
        )
    console.print(t)
    console.print(f"baselines: unigram {rep.unigram:.3f}, current-token table {rep.current_token:.3f}")
