"""Left-padded forward passes and float64 distribution arithmetic, chunked to bound memory."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from safetyscope.batching import cache_kwarg, model_device, output_cache, pad_left

#: Rows of a ``[T, vocab]`` float64 block processed at once: caps the temporary at ~256 MiB.
_CHUNK_ELEMENTS = 1 << 25


def _chunk_rows(vocab: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, vocab))


def supports_logits_to_keep(model: Any) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def forward_logits(model: Any, seqs: Sequence[Sequence[int]], pad: int, keep: int | None = None) -> torch.Tensor:
    """Logits of a left-padded batch, positions computed from the mask (padding-invariant).

    Args:
        model: a causal LM (hooks on it are active).
        seqs: unpadded token id lists.
        pad: pad id (always masked out).
        keep: only the last ``keep`` positions are needed (saves the vocabulary projection of the
            rest where the model supports ``logits_to_keep``); ``None`` keeps all.

    Returns:
        ``[batch, K, vocab]`` logits of the last ``K`` padded columns (``K = keep`` or the width).
        The real token ``j`` of a row of length ``L`` sits at kept column ``K - L + j``.
    """
    kwargs: dict[str, Any] = dict(pad_left(seqs, pad, model_device(model)), use_cache=False)
    width = kwargs["input_ids"].shape[1]
    k = width if keep is None else min(keep, width)
    if k < width and supports_logits_to_keep(model):
        kwargs["logits_to_keep"] = k
    logits = model(**kwargs).logits
    return logits[:, -k:, :]


#: Shortest shared prefix worth a separate pass (tokens).
MIN_SHARED_PREFIX = 4


def shared_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Tokens that every sequence starts with, leaving at least one token of each to run."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for i in range(max(0, n)):
        if any(s[i] != first[i] for s in seqs):
            return i
    return max(0, n)


@torch.no_grad()
def forward_logits_shared_prefix(model: Any, seqs: Sequence[Sequence[int]], pad: int, keep: int | None = None,
                                 blocks: int = 1) -> torch.Tensor:
    """:func:`forward_logits` that runs the sequences' common prefix once per row block.

    Chat prompts share their template's opening (a system prompt is often half the tokens).
    The prefix runs as ``blocks`` rows (one per row block of an arm-major batch, so each arm's
    edits see it, :func:`safetyscope.activations.only_rows`); its KV cache is repeated to every
    row of the block and the suffixes run left-padded after it, pads masked and positions
    continuing from the prefix (sequences longer than a sliding window take the plain path). Equal to :func:`forward_logits` (tested on every family) for
    edits that treat every position alike (ablation, addition at all positions); edits that
    single out a position of the pass (``add(positions="last")``, CAST's condition) must use
    :func:`forward_logits`.
    """
    p = shared_prefix_length(seqs)
    cfg = getattr(model.config, "text_config", None) or model.config
    window = getattr(cfg, "sliding_window", None)  # pads inside a window would shift it
    if p < MIN_SHARED_PREFIX or len(seqs) % blocks or len(seqs) == blocks or (
            window and window < max(len(s) for s in seqs)):
        return forward_logits(model, seqs, pad, keep)
    device = model_device(model)
    head = torch.tensor([list(seqs[0][:p])] * blocks, device=device)
    cache = output_cache(model(input_ids=head, use_cache=True))
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return forward_logits(model, seqs, pad, keep)
    cache.batch_repeat_interleave(len(seqs) // blocks)
    tail = pad_left([s[p:] for s in seqs], pad, device)
    mask = torch.cat([torch.ones(len(seqs), p, dtype=tail["attention_mask"].dtype, device=device),
                      tail["attention_mask"]], 1)
    kwargs: dict[str, Any] = {"input_ids": tail["input_ids"], "attention_mask": mask,
                              "position_ids": tail["position_ids"] + p, cache_kwarg(model): cache, "use_cache": True}
    width = tail["input_ids"].shape[1]
    k = width if keep is None else min(keep, width)
    if k < width and supports_logits_to_keep(model):
        kwargs["logits_to_keep"] = k
    return model(**kwargs).logits[:, -k:, :]


def log_softmax64(logits: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last axis in float64."""
    return torch.log_softmax(logits.to(torch.float64), dim=-1)


def kl_rows(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """``KL(P || Q)`` per row of two ``[T, vocab]`` logit matrices, in float64 (on the CPU).

    ``KL(P||Q) = sum_t P(t) (log P(t) - log Q(t))``; terms with ``P(t) = 0`` contribute 0.
    """
    if p_logits.shape != q_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(p_logits.shape)} vs {tuple(q_logits.shape)}")
    step = _chunk_rows(p_logits.shape[-1])
    out = []
    for s in range(0, p_logits.shape[0], step):
        lp = log_softmax64(p_logits[s:s + step])
        lq = log_softmax64(q_logits[s:s + step].to(p_logits.device))
        p = lp.exp()
        terms = torch.where(p > 0, p * (lp - lq), torch.zeros_like(p))
        out.append(terms.sum(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def nll_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``targets[t]`` under ``logits[t]`` (``[T, vocab]``), float64 on the CPU."""
    step = _chunk_rows(logits.shape[-1])
    out = []
    for s in range(0, logits.shape[0], step):
        lp = log_softmax64(logits[s:s + step])
        out.append(-lp.gather(-1, targets[s:s + step].to(lp.device).view(-1, 1)).squeeze(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
