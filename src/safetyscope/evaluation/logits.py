"""Left-padded forward passes and float64 distribution arithmetic, chunked to bound memory."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from safetyscope.batching import model_device, pad_left

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
