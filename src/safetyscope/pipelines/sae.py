"""SAE pipelines: train (stream -> train -> evaluate -> save) and the refusal-feature steering study.

:func:`train_and_save` writes ``OUT/cfg.json`` and ``OUT/sae_weights.safetensors`` (SAELens format)
and ``OUT/metrics.json`` (``l0``, ``fvu``, ``dead_fraction``, ``dense_fraction``,
``ce_loss_recovered`` and its mean-ablation variant, ``seconds``, ``tokens``, throughputs).

:func:`refusal_study` ranks latents for harmful vs harmless training prompts (with the
shuffled-label null), then on held-out prompts ablates the top latents on harmful prompts
(does refusal drop?) and clamps them high on harmless prompts (is refusal induced?), each beside
the same edit on random latents of matched firing frequency, with refusal rates and Wilson intervals.
The "high" value is ``clamp_mult`` x the latent's largest activation on the harmful training
prompts; a control latent is clamped so that its decoder adds a vector of the same norm.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from safetyscope import __version__
from safetyscope.activations import Positions, Site, collect
from safetyscope.causal.arms import run_arms
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel
from safetyscope.outputs import check_output
from safetyscope.pipelines.refusal import RefusalPrompts, judge_for, refusal_prompts
from safetyscope.sae.corpus import load_corpus
from safetyscope.sae.evaluate import SAEMetrics, evaluate_sae, latent_frequencies
from safetyscope.sae.features import FeatureRanking, rank_latents
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.sae.saelens import save_sae
from safetyscope.sae.steer import matched_frequency_latents, steering_arms
from safetyscope.sae.stream import stream_activations
from safetyscope.sae.train import TrainConfig, TrainResult, train_sae


@dataclass
class TrainRun:
    """What :func:`train_and_save` did: metrics, throughput and the training record."""

    metrics: SAEMetrics
    train: TrainResult
    stream_seconds: float
    stream_tokens: int

    def summary(self) -> dict[str, Any]:
        """The ``metrics.json`` content."""
        m = self.metrics
        return {"l0": m.l0, "fvu": m.fvu, "dead_fraction": m.dead_fraction, "dense_fraction": m.dense_fraction,
                "ce_loss_recovered": m.ce_loss_recovered, "ce_loss_recovered_vs_mean": m.ce_loss_recovered_vs_mean,
                "ce_clean": m.ce_clean, "ce_sae": m.ce_sae, "ce_zero": m.ce_zero, "ce_mean": m.ce_mean,
                "seconds": self.train.seconds, "tokens": self.train.tokens,
                "stream_seconds": self.stream_seconds, "stream_tokens": self.stream_tokens,
                "stream_tokens_per_second": self.stream_tokens / self.stream_seconds if self.stream_seconds else None,
                "train_tokens_per_second": self.train.tokens_per_second, "eval_tokens": m.tokens,
                "config": asdict(self.train.config), "provenance": {**self.train.provenance, **m.provenance}}


def train_and_save(lm: LoadedModel, site: Site, cfg: TrainConfig, out: Path | None, *, corpus: str = "organism",
                   positions: str = "all", max_len: int = 128, eval_corpus: str | None = None,
                   shards: Path | None = None, force: bool = False, progress: bool = True) -> TrainRun:
    """Stream ``corpus`` at ``site``, train, evaluate on ``eval_corpus`` (default: a held-out organism
    slice or the training corpus), and save to ``out`` (SAELens format + ``metrics.json``)."""
    if out is not None:
        check_output(out, force=force, kind="dir", inputs=[lm.path])
    data = load_corpus(lm, corpus, positions, max_len=max_len, seed=cfg.seed)
    store = stream_activations(lm, data, site, shards, progress=progress)
    stream_seconds = store.seconds
    result = train_sae(store, cfg, progress=progress)
    held = eval_corpus or (f"organism:{min(400, len(data.seqs))}" if corpus.startswith("organism") else corpus)
    ev = load_corpus(lm, held, positions, max_len=max_len, seed=cfg.seed + 1000)
    ev_store = stream_activations(lm, ev, site, progress=False)
    metrics = evaluate_sae(lm, result.sae, site, ev_store, ev, progress=progress)
    run = TrainRun(metrics, result, stream_seconds, store.n_rows)
    if out is not None:
        save_sae(result.sae, out, force=force, model_name=lm.spec,
                 extra_files={"metrics.json": json.dumps(run.summary(), indent=1, default=str)})
    return run


@dataclass
class RefusalStudy:
    """Latent ranking and the two steering experiments with their controls."""

    ranking: FeatureRanking
    latents: list[int]
    control_latents: list[int]
    clamp_values: list[float]
    control_clamp_values: list[float]
    reports: dict[str, dict[str, Any]]
    summary: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["ranking"] = self.ranking.to_dict()
        return out


def prompt_latents(lm: LoadedModel, sae: SparseAutoencoder, prompts: list[str], site: Site,
                   positions: str = "eoi") -> torch.Tensor:
    """Latent activations per prompt ``[n, d_sae]``: the mean over the selected token positions."""
    res = collect(lm, prompts, site, positions, "none", progress=False)
    assert res.prompt_index is not None
    with torch.no_grad():
        f = sae.encode(res.rows[site.key]).double()
    out = torch.zeros(len(prompts), sae.cfg.d_sae, dtype=torch.float64)
    out.index_add_(0, res.prompt_index, f)
    return out / torch.bincount(res.prompt_index, minlength=len(prompts)).clamp_min(1).unsqueeze(1)


def _rate_summary(report: Any, set_name: str) -> dict[str, Any]:
    arms = report.arms
    return {arm: arms[arm].refusal[set_name].to_dict() for arm in arms}


def refusal_study(lm: LoadedModel, sae: SparseAutoencoder, site: Site, *, positions: str = "eoi", n_latents: int = 1,
                  clamp_mult: float = 2.0, n_test: int = 50, n_train: int = 64, seed: int = 0,
                  direction: torch.Tensor | None = None, harmful: Path | None = None, harmless: Path | None = None,
                  max_new_tokens: int = 24, judge: str | None = None, sets: RefusalPrompts | None = None,
                  verdict: Judge | None = None) -> RefusalStudy:
    """Rank latents (harmful vs harmless) and measure clamping them against matched-frequency controls.

    ``sets``/``verdict``: prompt splits and judge to use as given (the audit's), instead of drawing
    them from ``harmful``/``harmless``/``judge``.
    """
    t0 = time.perf_counter()
    Positions.parse(positions)
    if sets is None:
        sets = refusal_prompts(lm, harmful, harmless, n_train=n_train, n_val=2, n_test=n_test, seed=seed)
    acts_h = prompt_latents(lm, sae, sets.harmful_train, site, positions)
    acts_b = prompt_latents(lm, sae, sets.harmless_train, site, positions)
    if direction is None:  # the diff-in-means refusal direction at the SAE's site and positions
        direction = (collect(lm, sets.harmful_train, site, positions, "mean", progress=False).mean(site)
                     - collect(lm, sets.harmless_train, site, positions, "mean", progress=False).mean(site))
    ranking = rank_latents(acts_h, acts_b, top_n=max(20, n_latents), seed=seed, sae=sae, direction=direction)
    chosen = [r.latent for r in ranking.top[:n_latents]]
    all_rows = collect(lm, sets.harmful_train + sets.harmless_train, site, "all", "none", progress=False).rows[site.key]
    freq = latent_frequencies(sae, all_rows)
    control = matched_frequency_latents(freq, chosen, seed=seed)
    values = [clamp_mult * float(acts_h[:, i].max()) for i in chosen]
    norms = sae.W_dec.detach().norm(dim=1)
    ctrl_values = [v * float(norms[i] / norms[c]) for v, i, c in zip(values, chosen, control, strict=True)]
    verdict = verdict or judge_for(lm, judge)
    ablate = run_arms(lm, steering_arms(lm, sae, site, chosen, control, "ablate"), {"harmful": sets.harmful_test},
                      verdict, intervention="sae_ablate", kl_set=None, max_new_tokens=max_new_tokens,
                      params={"latents": chosen, "control": control})
    induce = run_arms(lm, steering_arms(lm, sae, site, chosen, control, "clamp", values, ctrl_values),
                      {"harmless": sets.harmless_test}, verdict, intervention="sae_clamp", kl_set=None,
                      max_new_tokens=max_new_tokens, params={"latents": chosen, "control": control, "values": values})

    def rate(report: Any, arm: str, name: str) -> float:
        return float(report.arms[arm].refusal[name].rate or 0.0)

    summary = {
        "refusal_drop": rate(ablate, "baseline", "harmful") - rate(ablate, "intervened", "harmful"),
        "refusal_drop_control": rate(ablate, "baseline", "harmful") - rate(ablate, "control", "harmful"),
        "refusal_induced": rate(induce, "intervened", "harmless") - rate(induce, "baseline", "harmless"),
        "refusal_induced_control": rate(induce, "control", "harmless") - rate(induce, "baseline", "harmless"),
        "ablate_rates": _rate_summary(ablate, "harmful"), "clamp_rates": _rate_summary(induce, "harmless"),
        "latent_frequency": [float(freq[i]) for i in chosen], "control_frequency": [float(freq[i]) for i in control],
        "seconds": time.perf_counter() - t0}
    prov = {"model": lm.spec, "model_fingerprint": lm.fingerprint(), "site": site.key, "positions": positions,
            "prompts": sets.source, "n_test": len(sets.harmful_test), "judge": verdict.name, "clamp_mult": clamp_mult,
            "seed": seed, "safetyscope_version": __version__}
    return RefusalStudy(ranking, chosen, control, values, ctrl_values,
                        {"ablate": ablate.to_dict(), "clamp": induce.to_dict()}, summary, prov)
