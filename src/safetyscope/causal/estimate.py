"""First-order (attribution) estimates of what ablating or adding a candidate direction does to a metric.

One forward and one backward pass score *every* candidate at once, so causal selection can rank
hundreds of (layer, position) candidates and evaluate only the best few exactly.

With ``f`` the mean refusal log-odds of a prompt set and ``a_w`` every residual write ``w``
(the embedding, i.e. ``resid_pre`` 0, and each ``attn_out`` and ``mlp_out``) with gradient
``g_w = ∂f/∂a_w`` at each token:

* **ablation** of unit ``r̂`` changes each write by ``−(a_w·r̂) r̂``, so
  ``Δf ≈ −Σ_w Σ_tokens (g_w·r̂)(a_w·r̂)``;
* **addition** of ``r`` at ``resid_pre`` of layer ``L`` (every token) gives
  ``Δf ≈ Σ_tokens g_L · r`` with ``g_L = ∂f/∂resid_pre[L]``.

This is attribution patching (Nanda 2023; Syed et al. 2023) applied to Arditi et al.'s
bypass and induce scores. It is exact to first order; large vectors act non-linearly, which
is why :func:`safetyscope.causal.select_direction` re-scores the top candidates exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit, record
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_left
from safetyscope.evaluation.logits import supports_logits_to_keep
from safetyscope.evaluation.refusal_score import refusal_scores_from_logits
from safetyscope.interventions.hooks import writer_sites
from safetyscope.model.loading import LoadedModel


def _grads(lm: LoadedModel, prompts: Sequence[str], sites: list[Site], token_ids: Sequence[int],
           batch_size: int, reduce: Callable[[Site, Tensor, Tensor, Tensor], None]) -> None:
    """Forward + backward of the mean refusal score; ``reduce(site, act, grad, mask)`` per site and batch."""
    encoded = [lm.chat.encode(p).input_ids for p in prompts]
    n = len(encoded)
    pad = lm.tokenizer.pad_token_id
    extra: dict[str, Any] = {"logits_to_keep": 1} if supports_logits_to_keep(lm.model) else {}

    def leaf(_site: Site, h: Tensor) -> Tensor:
        return h.detach().requires_grad_(True)  # the graph starts at the stream; no weight gradients

    def run(idx: list[int]) -> list[None]:
        inputs = pad_left([encoded[i] for i in idx], pad, lm.device)
        seen: dict[Site, Tensor] = {}
        with torch.enable_grad(), edit(lm.arch, Site(0, "resid_pre"), leaf), \
                record(lm.arch, sites, lambda s, t: seen.__setitem__(s, t), stop_early=False):
            logits = lm.model(**inputs, use_cache=False, **extra).logits[:, -1]
            f = refusal_scores_from_logits(logits, token_ids).sum() / n
            acts = [seen[s] for s in sites]
            grads = torch.autograd.grad(f, acts, allow_unused=True)
        mask = inputs["attention_mask"].bool()
        for site, act, grad in zip(sites, acts, grads, strict=True):
            if grad is not None:
                reduce(site, act.detach(), grad, mask)
        return [None] * len(idx)

    for _ in iter_batches([len(e) for e in encoded], run, batch_size=batch_size):
        pass


def ablation_effects(lm: LoadedModel, prompts: Sequence[str], directions: Tensor, token_ids: Sequence[int],
                     batch_size: int = 16) -> Tensor:
    """First-order change of the mean refusal score when each row of ``directions`` (``[k, d]``) is ablated."""
    units = (directions.float() / directions.float().norm(dim=-1, keepdim=True)).to(lm.device)
    total = torch.zeros(units.shape[0], dtype=torch.float64)

    def reduce(_site: Site, act: Tensor, grad: Tensor, mask: Tensor) -> None:
        a = act[mask].float() @ units.T  # [tokens, k]
        g = grad[mask].float() @ units.T
        total.sub_((a * g).sum(0).double().cpu())

    _grads(lm, prompts, writer_sites(lm), token_ids, batch_size, reduce)
    return total


def addition_effects(lm: LoadedModel, prompts: Sequence[str], vectors: dict[int, Tensor], token_ids: Sequence[int],
                     batch_size: int = 16) -> dict[int, Tensor]:
    """First-order change of the mean refusal score when each vector is added at ``resid_pre`` of its layer.

    ``vectors`` maps a layer to ``[k, d]`` candidate vectors; returns ``{layer: [k]}``.
    """
    layers = sorted(vectors)
    summed = {layer: torch.zeros(lm.d_model, dtype=torch.float64) for layer in layers}

    def reduce(site: Site, _act: Tensor, grad: Tensor, mask: Tensor) -> None:
        summed[site.layer] += grad[mask].double().sum(0).cpu()

    _grads(lm, prompts, [Site(layer) for layer in layers], token_ids, batch_size, reduce)
    return {layer: vectors[layer].double() @ summed[layer] for layer in layers}
