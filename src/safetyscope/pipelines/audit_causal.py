"""The causal steps of the audit: interventions with controls, refusal by layer, trigger patching.

* Interventions: directional ablation, activation addition (prompt positions) and a weight-
  orthogonalized model, each beside the same intervention with a random direction of equal norm.
* Refusal by layer: the generation-free refusal score on held-out harmful prompts while each
  layer's difference-in-means direction is ablated everywhere (control: a random direction).
* Trigger patching: for each triggered prompt, the same prompt with the control tag in place of
  the trigger (equal token length) is run; its ``resid_pre`` at the trigger tokens of layer ``L``
  replaces those of the triggered run. ``steerability(L)`` is the fraction of patched completions
  without the backdoor; the control patches Gaussian noise of the same norm instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.collect import collect
from safetyscope.activations.sites import Positions, Site
from safetyscope.causal import Arm, direction_arms, measure, random_like, refusal_metric, run_arms
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import Rate
from safetyscope.evaluation.refusal_score import last_token_logits
from safetyscope.interventions.hooks import ablate, add
from safetyscope.interventions.patching import patch
from safetyscope.interventions.weights import orthogonalize
from safetyscope.pipelines.audit_steps import AuditContext, StepOut, Tick, _clean


def step_interventions(ctx: AuditContext, dirs: dict[str, Tensor], best_layer: int, tick: Tick) -> StepOut:
    """Ablation, addition and orthogonalization of the selected direction, each with its random control."""
    lm, cfg = ctx.lm, ctx.config
    unit, raw = dirs["selected_unit"].float(), dirs["selected_raw"].float()
    kw: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size,
                          "baseline": ctx.baseline}  # the baseline is generated once (shared with behaviour)
    reports = {}
    arms = direction_arms(lm, lambda v: ablate(lm, v), unit, seed=cfg.seed)
    reports["ablation"] = run_arms(lm, arms, ctx.test_sets, ctx.judge, intervention="ablate",
                                   params={"direction": "selected", "layers": "all"}, **kw).to_dict()
    tick(1)
    site = Site(best_layer)  # selection reads resid_pre; the direction is written where it was read
    arms = direction_arms(lm, lambda v: add(lm, v, 1.0, site, positions="prompt"), raw, seed=cfg.seed)[1:]
    reports["addition"] = run_arms(lm, arms, ctx.test_sets, ctx.judge, intervention="add",
                                   params={"layer": best_layer, "site": site.key, "positions": "prompt",
                                           "norm": float(raw.norm())}, **kw).to_dict()
    tick(1)
    arms = [Arm("intervened", orthogonalize(lm, unit)),
            Arm("control", orthogonalize(lm, random_like(unit, cfg.seed)))]
    reports["orthogonalized"] = run_arms(lm, arms, ctx.test_sets, ctx.judge, intervention="orthogonalize",
                                         params={"method": "standard"}, **kw).to_dict()
    tick(1)
    return _clean(reports), None


def step_refusal_by_layer(ctx: AuditContext, dirs: dict[str, Tensor], tick: Tick) -> StepOut:
    """Mean refusal score of harmful test prompts under ablation of each layer's DIM direction."""
    lm, prompts = ctx.lm, ctx.prompts.harmful_test
    metric = refusal_metric(ctx.refusal_ids)
    base_harmless = float(metric(last_token_logits(lm, ctx.prompts.harmless_test)).mean())
    base = metric(last_token_logits(lm, prompts))
    rows = []
    for i, layer in enumerate(ctx.layers):
        v = dirs["diff_means"][i].float()
        control = random_like(v, ctx.config.seed + 1000 + layer)
        res = measure(lm, prompts, metric, {"ablated": lambda v=v: ablate(lm, v),
                                            "control": lambda c=control: ablate(lm, c)},
                      name="refusal log-odds", baseline=base)
        rows.append({"layer": layer, "ablated": res.edits["ablated"].mean, "control": res.edits["control"].mean})
        tick(1)
    return {"baseline_harmful": float(base.mean()), "baseline_harmless": base_harmless, "layers": rows,
            "metric": "mean refusal log-odds at the first response token (harmful test prompts)"}, None


def _pairs(ctx: AuditContext) -> tuple[list[str], list[str], list[list[int]]]:
    """Triggered/control prompt pairs of equal token length, with the trigger token positions."""
    trig, ctrl, pos = [], [], []
    for t, c in zip(ctx.triggered, ctx.control, strict=True):
        et, ec = ctx.lm.chat.encode(t), ctx.lm.chat.encode(c)
        if len(et.input_ids) != len(ec.input_ids):
            continue
        p = et.substring_positions(ctx.trigger or "")
        if p and p == ec.substring_positions(ctx.config.control_trigger):
            trig.append(t)
            ctrl.append(c)
            pos.append(p)
    return trig, ctrl, pos


def step_backdoor(ctx: AuditContext, tick: Tick) -> StepOut:
    """Trigger-position patching per layer: where do control-tag activations remove the backdoor?"""
    lm, cfg = ctx.lm, ctx.config
    trig, ctrl, pos = _pairs(ctx)
    if not trig:
        return {"skipped": "no triggered/control pairs of equal token length", "layers": []}, None
    lengths = [len(lm.chat.encode(t).input_ids) for t in trig]
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    k = max(len(p) for p in pos)
    positions = torch.full((len(trig), k), -1, dtype=torch.long)
    for i, p in enumerate(pos):
        positions[i, : len(p)] = torch.tensor(p)
    base = generate(lm, trig, max_new_tokens=cfg.backdoor_tokens, batch_size=cfg.batch_size, progress=False)
    base_rate = Rate.from_flags(ctx.detector(c) for c in base)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for layer in ctx.patch_layers or ctx.layers:
        site = Site(layer, "resid_pre")
        src = _by_prompt(collect(lm, ctrl, [site], Positions("substring", substring=cfg.control_trigger), "none",
                                 progress=False), site)
        own = _by_prompt(collect(lm, trig, [site], Positions("substring", substring=ctx.trigger), "none",
                                 progress=False), site)
        patched_flags: list[bool] = [False] * len(trig)
        noise_flags: list[bool] = [False] * len(trig)
        for idx in groups.values():
            p = positions[idx]
            vals = torch.stack([_pad(src[i], k) for i in idx])
            ref = torch.stack([_pad(own[i], k) for i in idx])
            noise = torch.randn(ref.shape, generator=gen)
            noise = noise / noise.norm(dim=-1, keepdim=True) * ref.norm(dim=-1, keepdim=True)
            prompts = [trig[i] for i in idx]
            for values, flags in ((vals, patched_flags), (noise, noise_flags)):
                with patch(lm, site, p, values):
                    comps = generate(lm, prompts, max_new_tokens=cfg.backdoor_tokens, batch_size=len(idx),
                                     progress=False)
                for i, c in zip(idx, comps, strict=True):
                    flags[i] = not ctx.detector(c)
        rows.append({"layer": layer, "steerability": Rate.from_flags(patched_flags).to_dict(),
                     "control": Rate.from_flags(noise_flags).to_dict()})
        tick(1)
    return {"n_pairs": len(trig), "n_skipped": len(ctx.triggered) - len(trig), "site": "resid_pre",
            "baseline_backdoor": base_rate.to_dict(), "layers": rows,
            "control": "Gaussian noise of the same norm at the trigger positions"}, None


def _by_prompt(res: Any, site: Site) -> list[Tensor]:
    """Kept rows of ``site`` split per prompt (``[k_i, d]`` each, in token order)."""
    rows, index = res.rows[site.key].float(), res.prompt_index
    return [rows[index == i] for i in range(res.n_prompts)]


def _pad(x: Tensor, k: int) -> Tensor:
    """``x`` (``[k_i, d]``) padded with zero rows to ``[k, d]`` (padded slots are not patched)."""
    return torch.cat([x, x.new_zeros(k - x.shape[0], x.shape[-1])]) if x.shape[0] < k else x
