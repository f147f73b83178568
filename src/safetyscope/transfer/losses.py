"""The four losses of the representation-transfer post, with the attention mask ``m_i``.

For mapped activations ``ŷ_i``, true target activations ``y_i`` (``i`` over token positions,
``d`` the width) and mask ``m_i`` (0 at padding):

* MSE (trained on): ``1/(Σm · d) Σ m_i ‖ŷ_i − y_i‖²``
* cosine (monitored): ``1/Σm Σ m_i ŷ_i·y_i / (‖ŷ_i‖ ‖y_i‖)``
* FVU: ``Σ m_i ‖ŷ_i − y_i‖² / Σ m_i ‖y_i − ȳ‖²`` (``ȳ`` the masked mean)
* LM KL: ``1/Σm Σ m_i Σ_v p(v|y_i) log(p(v|y_i) / p(v|ŷ_i))``, the target's next-token
  distribution with true vs mapped activations at the mapped layer.

Every function takes ``[..., d]`` tensors (rows or ``[batch, pos, d]``) and an optional mask of
the leading shape (``None``: every position counts).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _mask(x: Tensor, mask: Tensor | None) -> Tensor:
    m = (
        torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
        if mask is None
        else mask.to(x.device, x.dtype)
    )
    if m.shape != x.shape[:-1]:
        raise ValueError(f"mask shape {tuple(m.shape)} does not match activations {tuple(x.shape[:-1])}")
    return m


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``Σ m ‖ŷ − y‖² / (Σ m · d)``."""
    m = _mask(target, mask)
    return (m * (pred - target).pow(2).sum(-1)).sum() / (m.sum().clamp_min(1) * target.shape[-1])


def masked_cosine(pred: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Mean cosine similarity of mapped and true activations over unmasked positions."""
    m = _mask(target, mask)
    cos = (pred * target).sum(-1) / (pred.norm(dim=-1) * target.norm(dim=-1)).clamp_min(eps)
    return (m * cos).sum() / m.sum().clamp_min(1)


def fvu(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fraction of variance unexplained: residual sum of squares over total (about the masked mean)."""
    m = _mask(target, mask)
    mean = (m.unsqueeze(-1) * target).reshape(-1, target.shape[-1]).sum(0) / m.sum().clamp_min(1)
    res = (m * (pred - target).pow(2).sum(-1)).sum()
    tot = (m * (target - mean).pow(2).sum(-1)).sum()
    return res / tot.clamp_min(1e-12)


def lm_kl(true_logits: Tensor, mapped_logits: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over unmasked positions of ``KL(p(·|y) ‖ p(·|ŷ))`` from two ``[..., vocab]`` logit tensors."""
    m = _mask(true_logits, mask)
    lp = torch.log_softmax(true_logits.double(), -1)
    lq = torch.log_softmax(mapped_logits.double(), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    return ((m.double() * kl).sum() / m.double().sum().clamp_min(1)).to(true_logits.dtype)
