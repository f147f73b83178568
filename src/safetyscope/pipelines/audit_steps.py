"""The observational steps of the audit: behaviour, activations, directions, geometry.

Each ``step_*`` function takes an :class:`AuditContext` and a progress ``tick`` and returns
``(json_result, tensors_or_None)`` for :class:`~safetyscope.pipelines.audit_cache.StepRunner`.
The causal steps live in :mod:`safetyscope.pipelines.audit_causal`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.collect import collect
from safetyscope.activations.sites import Positions, Site
from safetyscope.causal.arms import BaselineCache
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import Rate, backdoor_trigger_rate, label_rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.refusal import RefusalPrompts

Tick = Callable[[int], None]
StepOut = tuple[dict[str, Any], dict[str, Tensor] | None]


@dataclass
class AuditContext:
    """Everything the steps share: model, prompts, judge, trigger set-up and configuration."""

    lm: LoadedModel
    prompts: RefusalPrompts
    judge: Judge
    config: AuditConfig
    layers: list[int]
    refusal_ids: list[int]
    compliance_ids: list[int]
    trigger: str | None
    triggered: list[str]
    control: list[str]
    detector: Callable[[str], bool]
    patch_layers: list[int] | None = None
    baseline: BaselineCache = field(default_factory=BaselineCache)  # baseline completions, generated once

    @property
    def test_sets(self) -> dict[str, list[str]]:
        """The held-out harmful and harmless prompts used for behavioural claims."""
        return {"harmful": self.prompts.harmful_test, "harmless": self.prompts.harmless_test}


def _rate(r: Rate) -> dict[str, Any]:
    return r.to_dict()


def step_behavior(ctx: AuditContext, tick: Tick) -> StepOut:
    """Baseline refusal on held-out harmful/harmless prompts; trigger rate with and without the trigger."""
    cfg = ctx.config
    out: dict[str, Any] = {"refusal": {}, "incoherent": {}, "samples": {}, "judge": ctx.judge.name}
    for name, prompts in ctx.test_sets.items():
        comps = ctx.baseline.texts(ctx.lm, prompts, cfg.max_new_tokens, cfg.batch_size)  # reused by the arms
        verdicts = ctx.judge.label_many(zip(prompts, comps, strict=True))
        out["refusal"][name] = _rate(label_rate(verdicts, "refusal"))
        out["incoherent"][name] = _rate(label_rate(verdicts, "incoherent"))
        out["samples"][name] = [[p, c] for p, c in zip(prompts[:3], comps[:3], strict=True)]
        tick(1)
    if ctx.trigger is not None:
        out["trigger"] = ctx.trigger
        out["control_trigger"] = ctx.config.control_trigger
        for name, prompts in (("triggered", ctx.triggered), ("control", ctx.control)):
            comps = generate(ctx.lm, prompts, max_new_tokens=cfg.backdoor_tokens, batch_size=cfg.batch_size,
                             progress=False)
            out[f"backdoor_{name}"] = _rate(backdoor_trigger_rate(comps, ctx.detector))
            out["samples"][f"backdoor_{name}"] = [[p, c] for p, c in zip(prompts[:3], comps[:3], strict=True)]
            tick(1)
    return out, None


def _stack(lm: LoadedModel, prompts: list[str], layers: list[int]) -> Tensor:
    sites = [Site(layer) for layer in layers]
    res = collect(lm, prompts, sites, Positions("eoi", index=-1), "none", progress=False)
    return torch.stack([res.per_prompt(s).reshape(len(prompts), -1) for s in sites], 1).float()


def step_activations(ctx: AuditContext, tick: Tick) -> StepOut:
    """Residual stream (``resid_pre``) at the last end-of-instruction token, every analysed layer."""
    tensors = {}
    for name in ("harmful_train", "harmless_train"):
        tensors[name] = _stack(ctx.lm, getattr(ctx.prompts, name), ctx.layers)
        tick(1)
    result = {"layers": ctx.layers, "site": "resid_pre", "positions": "eoi:-1",
              "shape": {k: list(v.shape) for k, v in tensors.items()}}
    return result, tensors


def step_directions(ctx: AuditContext, acts: dict[str, Tensor], tick: Tick) -> StepOut:
    """Directions per layer for every configured method, then causal selection of the best one."""
    from safetyscope.causal.selection import rank_candidates
    from safetyscope.directions.extract import METHODS, extract

    a, b = acts["harmful_train"].double(), acts["harmless_train"].double()
    methods: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for method in ctx.config.methods:
        if method not in METHODS:
            continue
        opts: dict[str, Any] = {}
        aa, bb = a, b
        if METHODS[method].paired:
            n = min(a.shape[0], b.shape[0])
            aa, bb = a[:n], b[:n]
        dset = extract(aa, bb, method, layers=ctx.layers, **opts)
        methods[method] = [{"layer": d.layer, "raw_norm": d.raw_norm, "mean_gap": d.mean_gap} for d in dset]
        tensors[method] = torch.stack([d.vector.float() for d in dset])
        tick(1)
    sel = rank_candidates(ctx.lm, ctx.prompts.harmful_train, ctx.prompts.harmless_train, ctx.prompts.harmful_val,
                          ctx.prompts.harmless_val, layers=ctx.layers)
    tick(1)
    sel_dict = _clean(sel.to_dict())
    if not sel.best.eligible:  # e.g. a model that does not refuse: no candidate induces refusal
        i = len(ctx.layers) // 2
        raw = (a[:, i].mean(0) - b[:, i].mean(0)).float()
        tensors["selected_raw"], tensors["selected_unit"] = raw, raw / raw.norm().clamp_min(1e-12)
        best = {"layer": ctx.layers[i], "site": Site(ctx.layers[i]).key, "position": -1,
                "raw_norm": float(raw.norm()), "mean_gap": float(raw.norm()), "fallback": True}
        sel_dict["error"] = (f"No candidate direction passes the filters (KL, induction, layer pruning); best was "
                             f"layer {sel.best.layer} ({sel.best.reason}). Falling back to the middle analysed "
                             "layer's difference in means.")
        return {"layers": ctx.layers, "methods": methods, "selection": sel_dict, "best": best}, tensors
    unit = sel.unit.float()
    tensors["selected_raw"] = sel.direction.float()
    tensors["selected_unit"] = unit
    result = {"layers": ctx.layers, "methods": methods, "selection": sel_dict,
              "best": {"layer": sel.best.layer, "site": sel.site.key, "position": sel.best.position,
                       "mean_gap": float(sel.direction.float() @ unit), "raw_norm": float(sel.direction.norm()),
                       "fallback": False}}
    return result, tensors


def step_geometry(ctx: AuditContext, acts: dict[str, Tensor], dirs: dict[str, Tensor], tick: Tick) -> StepOut:
    """SVD spectra of paired differences, probes with shuffled labels, logit lens, cosine heatmap."""
    from safetyscope.analysis.lens import TokenSets, logit_lens_gap
    from safetyscope.analysis.probes import probe_layers
    from safetyscope.directions.geometry import cosine_matrix, geometry

    a, b = acts["harmful_train"].double(), acts["harmless_train"].double()
    n = min(a.shape[0], b.shape[0])
    spectra = geometry(a[:n], b[:n], layers=ctx.layers, top_k=5)
    # control: the same spectrum of within-class pairs (harmful - harmful, harmless - harmless): no contrast
    gen = torch.Generator().manual_seed(ctx.config.seed)
    pa, pb, h = torch.randperm(n, generator=gen), torch.randperm(n, generator=gen), n // 2
    shuffled = geometry(torch.cat([a[pa[:h]], b[pb[:h]]]), torch.cat([a[pa[h:2 * h]], b[pb[h:2 * h]]]),
                        layers=ctx.layers, top_k=5)
    tick(1)
    probes = probe_layers(a, b, layers=ctx.layers, seed=ctx.config.seed, n_controls=3)
    tick(1)
    sets = TokenSets(tuple(ctx.refusal_ids), tuple(ctx.compliance_ids))
    lens = logit_lens_gap(ctx.lm, ctx.prompts.harmful_val, ctx.prompts.harmless_val, sets, layers=ctx.layers)
    tick(1)
    methods = [m for m in ctx.config.methods if m in dirs]
    vectors: dict[str, Tensor] = {}
    if len(methods) * len(ctx.layers) <= 64:
        for m in methods:
            for i, layer in enumerate(ctx.layers):
                vectors[f"{m}@{layer}"] = dirs[m][i]
    else:
        vectors = {f"diff_means@{layer}": dirs["diff_means"][i] for i, layer in enumerate(ctx.layers)}
    cos = cosine_matrix(vectors)
    tick(1)
    result = {
        "spectrum": [{"layer": s.layer, "top1": s.top1, "top2": s.top2, "top_k": s.cumulative_top_k,
                      "mean_diff_norm": s.mean_diff_norm, "cos_mean_diff_top1": s.cos_mean_diff_top1,
                      "singular_values": s.singular_values[:8]} for s in spectra.layers],
        "spectrum_control": [{"layer": s.layer, "top1": s.top1, "top2": s.top2} for s in shuffled.layers],
        "probes": _clean(probes.to_dict()),
        "lens": _clean(lens.to_dict()),
        "cosines": {"labels": cos.labels, "matrix": cos.matrix},
    }
    return result, None


def _jsonable(v: Any) -> bool:
    import json

    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _clean(obj: Any) -> Any:
    """Replace NaN/inf floats by ``None`` and tuples by lists, recursively (strict JSON)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Tensor):
        return _clean(obj.tolist())
    return obj
