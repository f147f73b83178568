"""CLI commands that intervene and evaluate: ablate, steer, edit, judge, chat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from safetyscope.cli._app import (
    DirectionOpt,
    DtypeOpt,
    HarmfulOpt,
    HarmlessOpt,
    JsonOpt,
    app,
    console,
    finite,
    literal,
    load_direction,
    print_report,
    user_errors,
)


@app.command()
@user_errors
def ablate(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    direction: DirectionOpt,
    layer: Annotated[int | None, typer.Option(help="Layer to take from a multi-layer direction file.")] = None,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: Annotated[int, typer.Option(min=1, help="Test prompts per set.")] = 100,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens generated per prompt.")] = 32,
    judge: Annotated[str | None, typer.Option(help="Judge: default (linear), rules, keyword, llm:MODEL, hf:PATH, http:URL[#model], A+B (default: organism judge or linear).")] = None,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate directional ablation (every layer and position) against baseline and a random-direction control."""
    from safetyscope.causal import direction_arms, run_arms
    from safetyscope.interventions.hooks import ablate as ablate_hook
    from safetyscope.model import load_model
    from safetyscope.pipelines.refusal import judge_for, refusal_prompts

    lm = load_model(model, dtype=dtype)
    d = load_direction(direction, layer)
    prompts = refusal_prompts(lm, harmful, harmless, n_test=n)
    vec = d.vector.float()
    report = run_arms(lm, direction_arms(lm, lambda v: ablate_hook(lm, v), vec),
                      {"harmful": prompts.harmful_test, "harmless": prompts.harmless_test}, judge_for(lm, judge),
                      intervention="ablate", params={"direction": str(direction), "layer": d.layer},
                      max_new_tokens=max_new_tokens)
    print_report(report, as_json)


@app.command()
@user_errors
def steer(
    model: Annotated[str, typer.Argument(help="Model spec.")],
    direction: DirectionOpt,
    scale: Annotated[float, typer.Option(callback=finite, help="Multiple of the direction's natural magnitude (mean gap).")] = 1.0,
    layers: Annotated[str | None, typer.Option(help="Layers to add at (default: the direction's layer).")] = None,
    positions: Annotated[str, typer.Option(help="prompt (prompt pass only), all, or last.")] = "prompt",
    layer: Annotated[int | None, typer.Option(help="Layer to take from a multi-layer direction file.")] = None,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n: Annotated[int, typer.Option(min=1, help="Test prompts per set.")] = 100,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens generated per prompt.")] = 32,
    judge: Annotated[str | None, typer.Option(help="Judge: default (linear), rules, keyword, llm:MODEL, hf:PATH, http:URL[#model], A+B.")] = None,
    as_json: JsonOpt = False,
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate activation addition (induced refusal) against baseline and a random-direction control."""
    from safetyscope.activations import parse_layers
    from safetyscope.causal import direction_arms, run_arms
    from safetyscope.interventions.hooks import add
    from safetyscope.model import load_model
    from safetyscope.pipelines.refusal import judge_for, refusal_prompts

    lm = load_model(model, dtype=dtype)
    d = load_direction(direction, layer)
    from safetyscope.activations import Site
    from safetyscope.interventions.hooks import resolve_sites

    # --layers reuse the direction's stream point; without them it is written where it was read
    chosen = [Site(x, d.point or "resid_pre") for x in parse_layers(layers, lm.n_layers)] if layers else None  # type: ignore[arg-type]
    where = resolve_sites(lm, chosen, d, "steer")
    prompts = refusal_prompts(lm, harmful, harmless, n_test=n)
    vec = (d.vector * d.mean_gap).float()
    report = run_arms(lm, direction_arms(lm, lambda v: add(lm, v, scale, where, positions), vec),
                      {"harmful": prompts.harmful_test, "harmless": prompts.harmless_test}, judge_for(lm, judge),
                      intervention="add", params={"direction": str(direction), "scale": scale, "sites": [s.key for s in where],
                                                  "positions": positions}, max_new_tokens=max_new_tokens)
    print_report(report, as_json)


@app.command()
@user_errors
def edit(
    model: Annotated[str, typer.Argument(help="Model spec (never modified).")],
    out: Annotated[Path, typer.Option("--out", help="New HF model directory, adapter directory, or .gguf file.")],
    direction: Annotated[Path | None, typer.Option(
        "--direction", help="Direction file (required except for gabliteration, which extracts its own).")] = None,
    method: Annotated[str, typer.Option(help="standard, projected, biprojected or gabliteration.")] = "standard",
    layer: Annotated[int | None, typer.Option(help="Layer to take from a multi-layer direction file.")] = None,
    harmful: Annotated[Path | None, typer.Option(
        "--harmful", help="Harmful prompts for gabliteration's directions (default: organism corpus).")] = None,
    harmless: Annotated[Path | None, typer.Option(
        "--harmless", help="Harmless prompts: the mean for projected methods; gabliteration's pairs.")] = None,
    directions: Annotated[int, typer.Option("--directions", min=1, help="gabliteration: directions per layer (k).")] = 2,
    ridge: Annotated[float, typer.Option(min=0.0, help="gabliteration: ridge λ of the regularised projector.")] = 0.03,
    adaptive: Annotated[bool, typer.Option(
        "--adaptive/--no-adaptive", help="gabliteration: scale each layer by its separability (paper's adaptive scaling).")] = False,
    layer_threshold: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="gabliteration: edit layers with separability >= this fraction of the best.")] = 0.0,
    components: Annotated[str | None, typer.Option(
        help="Orthogonalize only these writers: a3 (attention of layer 3), a3.h1 (one head), m4 (MLP).")] = None,
    components_from: Annotated[Path | None, typer.Option(
        "--components-from", help="Take --top writers from a patching results.json (by |recovery|).")] = None,
    top: Annotated[int, typer.Option(min=1, help="Writers taken from --components-from.")] = 4,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    dtype: DtypeOpt = "auto",
    as_: Annotated[str, typer.Option(
        "--as", help="hf: a full HF model directory; lora: a PEFT LoRA adapter (exact for standard/projected); "
                     "gguf: one GGUF file (llama/qwen2, F16/BF16). Default: gguf if the input was GGUF, else hf.")] = "auto",
    gguf_dtype: Annotated[str | None, typer.Option(
        "--gguf-dtype", help="f16 or bf16 (default: bf16 for a bf16 model, else f16).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Orthogonalize residual-writing matrices against a direction (or gabliteration's per-layer subspaces) and save a new model."""
    from safetyscope.activations import collect
    from safetyscope.errors import OptionError
    from safetyscope.interventions.export import save_edited
    from safetyscope.interventions.weights import METHODS, orthogonalize
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.refusal import refusal_prompts

    if method not in (*METHODS, "gabliteration"):
        raise OptionError(f"--method {method!r}: use one of {', '.join((*METHODS, 'gabliteration'))}.")
    if as_ not in ("auto", "hf", "lora", "gguf"):
        raise OptionError(f"--as {as_!r}: use hf, lora or gguf.")
    if gguf_dtype not in (None, "f16", "bf16"):
        raise OptionError(f"--gguf-dtype {gguf_dtype!r}: use f16 or bf16 (quantize the file with llama.cpp).")
    if direction is None and method != "gabliteration":
        raise OptionError(f"--method {method} needs --direction FILE (only gabliteration extracts its own directions).")
    if components is not None and components_from is not None:
        raise OptionError("Pass --components or --components-from, not both.")
    if (components or components_from) and method == "gabliteration":
        raise OptionError("--components targets single-direction orthogonalization; drop it with --method gabliteration.")
    if as_ == "lora":
        from safetyscope.interop.lora import LORA_METHODS, LoraExportError

        if method == "biprojected":
            raise LoraExportError(f"--method {method} keeps each write vector's norm, which is not a low-rank update: "
                                  f"no LoRA reproduces it. Use --method {' or '.join(LORA_METHODS)} with --as lora.")
        if method not in LORA_METHODS or components or components_from:
            raise LoraExportError(f"--as lora exports whole-model {' or '.join(LORA_METHODS)} orthogonalization only "
                                  f"(gabliteration and --components are not exported as adapters yet); use --as hf.")
    inputs = [model, direction, harmless, harmful, components_from]
    if as_ == "auto" and str(model).endswith(".gguf"):
        as_ = "gguf"
    kind: Literal["file", "dir"] = "file" if as_ == "gguf" else "dir"
    if as_ != "auto":
        check_output(out, force=force, kind=kind, inputs=inputs)
    lm = load_model(model, dtype=dtype)
    if as_ == "auto":
        from safetyscope.interop.gguf_model import was_gguf

        as_, kind = ("gguf", "file") if was_gguf(model, lm) else ("hf", "dir")
        if as_ == "gguf" and out.suffix != ".gguf":
            raise OptionError(f"{model} was read from a GGUF file, so the edit is written as GGUF by default: give a "
                              f".gguf --out (e.g. {out.with_suffix('.gguf')}) or pass --as hf for a model directory.")
        check_output(out, force=force, kind=kind, inputs=inputs)
    check_output(out, force=force, kind=kind, inputs=[lm.path])
    if as_ == "gguf":
        from safetyscope.interop.gguf_model import check_exportable

        check_exportable(lm)  # refuse an unknown family or tokenizer before editing

    def save(edited: Any, card: dict[str, Any], label: str) -> None:
        if as_ == "gguf":
            from safetyscope.interop.gguf_model import write_gguf

            info = write_gguf(edited, out, gguf_dtype, name=f"{Path(str(model)).name} [{label}]", card=card)
            done = f"as {info.dtype.upper()} GGUF ({info.file_bytes / 1e6:.1f} MB, {info.n_tensors} tensors) "
        else:
            save_edited(edited, out, card, force=force)
            done = ""
        if not as_json:
            console.print(f"[green]saved[/] {literal(label)} model {done}to {literal(out)}")
    if method == "gabliteration":
        from safetyscope.interventions.gabliteration import gabliterate, plan_gabliteration, plan_shared

        if direction is not None:
            if adaptive:
                raise OptionError("--adaptive scales by the separability of extracted directions; drop --direction.")
            d = load_direction(direction, layer)
            shared = (d.basis if d.basis is not None else d.vector[None]).float()
            plan = plan_shared(lm, shared, ridge=ridge)
        else:
            prompts = refusal_prompts(lm, harmful, harmless)
            plan = plan_gabliteration(lm, prompts.harmful_train, prompts.harmless_train, k=directions, ridge=ridge,
                                      adaptive=adaptive, layer_threshold=layer_threshold)
        edited = gabliterate(lm, plan)
        card = {"source_model": model, "source_fingerprint": lm.fingerprint(), "method": "gabliteration",
                "direction_file": str(direction) if direction else None, "gabliteration": plan.to_dict()}
        save(edited, card, f"gabliterated (k={plan.k}, ridge={plan.ridge}, layers {plan.selected})")
        if as_json:
            print(plan.to_json())
        return
    assert direction is not None
    d = load_direction(direction, layer)
    if components_from is not None:
        from safetyscope.causal.edit_compare import components_from_patching
        from safetyscope.causal.patching_result import PatchingResult

        components = ",".join(components_from_patching(PatchingResult.load(components_from), top))
    mean = None
    if method != "standard":
        from safetyscope.data.prompts import load_prompts

        texts = list(load_prompts(harmless).prompts) if harmless else refusal_prompts(lm).harmless_train
        from safetyscope.interventions.hooks import resolve_sites

        site = resolve_sites(lm, None, d, f"edit --method {method}")[0]  # the mean is read where d was
        mean = collect(lm, texts, site, "eoi:-1", "mean", progress=False).mean(site).float()
    card = {"source_model": model, "source_fingerprint": lm.fingerprint(), "method": method,
            "direction_file": str(direction), "direction_layer": d.layer, "direction_provenance": d.provenance,
            "components": components}
    if as_ == "lora":
        from safetyscope.interop.lora import orthogonalization_lora, save_lora

        adapter = orthogonalization_lora(lm, d.vector.float(), method, harmless_mean=mean)
        save_lora(adapter, lm, out, card, force=force)
        console.print(f"[green]saved[/] {literal(method)} orthogonalization as a rank-{adapter.rank} LoRA adapter "
                      f"({adapter.n_params} parameters) to {literal(out)}")
        return
    edited = orthogonalize(lm, d.vector.float(), method, harmless_mean=mean, components=components)
    save(edited, card, f"{method}-orthogonalized" + (f" ({components})" if components else ""))
    if as_json:
        print(json.dumps({"method": method, "components": components, "out": str(out), "as": as_}))


@app.command("judge")
@user_errors
def judge_cmd(
    completions: Annotated[Path, typer.Option("--completions", help="JSONL (or .jsonl.gz) with instruction and completion per line.")],
    judge: Annotated[str, typer.Option(help="default (linear), rules, keyword, llm:MODEL, hf:PATH, http:URL[#model], or A+B+C (ensemble).")] = "default",
    rubric: Annotated[str | None, typer.Option(help="Rubric of llm:/http: judges: labels, harmbench, strongreject, llamaguard.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Field holding reference labels (compliance/refusal, yes/no, 1/0, null).")] = None,
    evaluate: Annotated[bool, typer.Option("--eval", help="Score the judge against --labels: agreement, kappa, confusion, precision/recall.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Label completions as refusal / compliance / incoherent (and score a judge with --labels FIELD --eval)."""
    from safetyscope.errors import OptionError
    from safetyscope.evaluation.judge_eval import JudgeEvaluation, format_evaluation
    from safetyscope.evaluation.judge_io import judge_file
    from safetyscope.evaluation.judges import get_judge

    if evaluate and labels is None:
        raise OptionError("--eval needs --labels FIELD (the field of each line holding the reference label).")
    records, summary = judge_file(completions, judge=get_judge(judge, rubric=rubric), labels=labels)
    if as_json:
        for rec in records:
            print(json.dumps(rec))
        print(json.dumps(summary))
        return
    if evaluate:
        console.print(format_evaluation(JudgeEvaluation.from_dict(summary["evaluation"])), markup=False, highlight=False)
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
    scale: Annotated[float, typer.Option(callback=finite, help="Steering multiple of the direction's mean gap.")] = 1.0,
    ablate_file: Annotated[Path | None, typer.Option("--ablate", help="Direction to ablate everywhere.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per reply.")] = 64,
    dtype: DtypeOpt = "auto",
    allow_special_tokens: Annotated[bool, typer.Option(
        "--allow-special-tokens", help="Accept the tokenizer's control tokens (e.g. <|im_end|>) in your text.")] = False,
) -> None:
    """Chat with a model (one turn per line, empty line or Ctrl-D to quit), optionally steered or ablated."""
    import contextlib

    from safetyscope.evaluation.generate import generate
    from safetyscope.interventions.hooks import ablate as ablate_hook
    from safetyscope.interventions.hooks import add
    from safetyscope.model import load_model

    lm = load_model(model, dtype=dtype)
    lm.chat.allow_special_tokens = allow_special_tokens
    if lm.kind == "base":
        console.print(f"note: {literal(model)} is a base model (pretrained, not instruction-tuned): its replies are "
                      f"continuations of the {lm.chat.template_kind} prompt format, not a trained chat behaviour.")
    stack = contextlib.ExitStack()
    if steer_file is not None:
        d = load_direction(steer_file)
        stack.enter_context(add(lm, d, scale, positions="prompt"))  # at the site it was read
    if ablate_file is not None:
        stack.enter_context(ablate_hook(lm, load_direction(ablate_file).vector.float()))
    with stack:
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                break
            print("model>", generate(lm, [line], max_new_tokens=max_new_tokens, progress=False)[0])


