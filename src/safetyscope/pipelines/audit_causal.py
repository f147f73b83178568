"""The causal steps of the audit: interventions with controls, refusal by layer, trigger patching.

* Interventions: directional ablation, activation addition (prompt positions) and a weight-
  orthogonalized model, each beside the same intervention with a random direction of equal norm.
* Refusal by layer: the generation-free refusal score on held-out harmful prompts while each
  layer's difference-in-means direction is ablated everywhere (control: a random direction).
* Trigger patching lives in :mod:`safetyscope.pipelines.audit_backdoor` (re-exported here): a
  layer x trigger-token patching sweep and per-layer steerability with a same-trigger control and
  an equal-norm noise control.
"""

from __future__ import annotations

import gc
from typing import Any

from torch import Tensor

from safetyscope.activations.sites import Site
from safetyscope.causal import Arm, direction_arms, measure, random_like, refusal_metric, run_arms
from safetyscope.evaluation.refusal_score import last_token_logits
from safetyscope.interventions.hooks import ablate, add
from safetyscope.interventions.weights import orthogonalize
from safetyscope.pipelines.audit_backdoor import step_backdoor
from safetyscope.pipelines.audit_steps import AuditContext, StepOut, Tick, _clean
from safetyscope.stats import mean_interval

__all__ = ["step_backdoor", "step_interventions", "step_refusal_by_layer"]


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
    # one edited copy at a time: two copies of a 1.5B model beside the original outgrow a 24 GB machine
    ortho: dict[str, Any] = {}
    for name, vec in (("intervened", unit), ("control", random_like(unit, cfg.seed))):
        edited = orthogonalize(lm, vec)
        part = run_arms(lm, [Arm(name, edited)], ctx.test_sets, ctx.judge, intervention="orthogonalize",
                        params={"method": "standard"}, **kw).to_dict()
        del edited
        gc.collect()
        ortho = part if not ortho else {**ortho, "arms": {**ortho["arms"], **part["arms"]}}
    reports["orthogonalized"] = ortho
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
                      name="refusal log-odds", baseline=base, share_prefix=True)  # ablation: position-blind
        rows.append({"layer": layer, "ablated": res.edits["ablated"].mean, "control": res.edits["control"].mean,
                     "ablated_ci": list(mean_interval(res.edits["ablated"].per_prompt)),
                     "control_ci": list(mean_interval(res.edits["control"].per_prompt))})
        tick(1)
    return {"baseline_harmful": float(base.mean()), "baseline_harmless": base_harmless, "layers": rows,
            "baseline_harmful_ci": list(mean_interval([float(v) for v in base.tolist()])),
            "metric": "mean refusal log-odds at the first response token (harmful test prompts)"}, None
