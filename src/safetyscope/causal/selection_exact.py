"""Exact scores of selection candidates: bypass and KL from ablated passes shared by a round of
candidates, induce from a partial pass each.

:class:`PrefixInduce` reuses the shared prefix in depth: the un-edited ``resid_pre`` of every
candidate layer is recorded once, and adding a candidate at layer L then runs only blocks L..
(the blocks below are replaced by pass-throughs, :func:`~safetyscope.causal.patching_runner.skip_blocks`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from safetyscope.activations import Site, edit, record
from safetyscope.activations.hooks import run_until_stopped
from safetyscope.batching import pad_left
from safetyscope.causal.patching_runner import skip_blocks
from safetyscope.evaluation.logits import kl_rows, supports_logits_to_keep
from safetyscope.evaluation.refusal_score import (
    last_token_logits,
    last_token_logits_under,
    refusal_scores_from_logits,
)
from safetyscope.interventions.hooks import ablate, add
from safetyscope.model.loading import LoadedModel


class PrefixInduce:
    """Exact *induce* scores that reuse the shared prefix: addition at layer L runs only blocks L.. on.

    One recording pass keeps the un-edited ``resid_pre`` of every candidate layer for the
    (left-padded) harmless validation batch; scoring a candidate at layer L then replaces blocks
    ``0..L-1`` by pass-throughs and writes ``recorded + r`` at ``resid_pre`` L — the same tensor
    the full forward would have there — so the result equals :func:`~safetyscope.interventions.add`
    with the blocks below L skipped. Falls back to the full forward for large prompt sets.
    """

    MAX_PROMPTS = 64

    def __init__(self, lm: LoadedModel, prompts: Sequence[str], layers: Sequence[int], tokens: list[int]) -> None:
        self.lm, self.prompts, self.tokens = lm, list(prompts), tokens
        self.saved: dict[int, Tensor] = {}
        if len(prompts) > self.MAX_PROMPTS:
            return
        encoded = [lm.chat.encode(p).input_ids for p in prompts]
        self.inputs = pad_left(encoded, lm.tokenizer.pad_token_id, lm.device)
        self.keep = {"logits_to_keep": 1} if supports_logits_to_keep(lm.model) else {}
        sites = [Site(layer) for layer in sorted(set(layers))]
        with torch.inference_mode(), record(lm.arch, sites, lambda s, t: self.saved.__setitem__(s.layer, t.clone())):
            run_until_stopped(lm.model, **self.inputs, use_cache=False)

    def __call__(self, vec: Tensor, layer: int) -> float:
        if layer not in self.saved:
            with add(self.lm, vec, sites=Site(layer)):
                logits = last_token_logits(self.lm, self.prompts)
        else:
            base = self.saved[layer]
            delta = vec.to(device=base.device, dtype=base.dtype)
            with torch.inference_mode(), skip_blocks(self.lm, layer), \
                    edit(self.lm.arch, Site(layer), lambda _s, _h: base + delta):
                logits = self.lm.model(**self.inputs, use_cache=False, **self.keep).logits[:, -1].float().cpu()
        return float(refusal_scores_from_logits(logits, self.tokens).mean())


def ablated_logits(lm: LoadedModel, vectors: Sequence[Tensor], prompts: Sequence[str],
                   batch_size: int = 32) -> Tensor:
    """Last-token logits of ``prompts`` with each of ``vectors`` ablated (``[len(vectors), n, vocab]``).

    All candidates share each forward pass (one row block per candidate), so scoring a round of
    candidates costs the passes of one, with more rows.
    """
    contexts = [lambda v=v: ablate(lm, v) for v in vectors]  # ablation treats every position alike
    return last_token_logits_under(lm, prompts, contexts, batch_size=batch_size * len(contexts), share_prefix=True)


def exact_scores(ablated: Tensor, vec: Tensor, layer: int, n_harmful: int, base_harmless_logits: Tensor,
                 tokens: list[int], induce: PrefixInduce) -> tuple[float, float, float]:
    """Exact bypass, induce and KL of one candidate from its ablated logits (harmful then harmless
    validation prompts, :func:`ablated_logits`) and one partial addition pass."""
    bypass = float(refusal_scores_from_logits(ablated[:n_harmful], tokens).mean())
    kl = float(kl_rows(base_harmless_logits, ablated[n_harmful:]).mean())
    return bypass, induce(vec, layer), kl
