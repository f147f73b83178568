"""The neuron co-activation graph and Laplacian penalty of graph-regularised SAEs (GSAE; Yeon, Cinus,
Wu & Luceri 2025, "GSAE: Graph-Regularized Sparse Autoencoders for Robust LLM Safety Steering",
arXiv:2512.06655; compendium 3.6).

Nodes are the ``d_in`` neurons (coordinates) of the activations the SAE reads. Edge weights are
their positive co-activation: ``A_ij = max(0, corr(x_i, x_j))`` over a sample of activations,
``i ≠ j``, sparsified to each neuron's ``k`` strongest neighbours and symmetrised
(``A ← max(A, Aᵀ)``). The penalty uses the symmetric normalised Laplacian
``L = I − D^{-1/2} A D^{-1/2}`` (``D`` the degrees) and smooths every decoder vector ``w_j`` (a row
of ``W_dec``, unit norm) over the graph:

    R(W_dec) = (1 / d_sae) Σ_j w_jᵀ L w_j = (1 / d_sae) Σ_j ½ Σ_{a,b} A_ab (w_ja/√d_a − w_jb/√d_b)²

so co-activating neurons get similar decoder weights and a concept that lives on a group of
co-activating neurons is shared by a group of latents instead of one. The total GSAE loss is the
ReLU + L1 SAE loss plus ``λ_g · R(W_dec)`` (``λ_g`` = ``graph_coeff``). With unit-norm rows
``R ∈ [0, 2]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from safetyscope.errors import OptionError


def coactivation_graph(rows: Tensor, k: int = 8) -> Tensor:
    """``[d, d]`` symmetric, non-negative adjacency of the ``d`` neurons of ``rows`` (``[n, d]``)."""
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise OptionError("The co-activation graph needs a [n >= 2, d] sample of activations.")
    d = rows.shape[1]
    if not 1 <= k < d:
        raise OptionError(f"graph_k must be between 1 and d_in - 1 ({d - 1}), got {k}.")
    x = rows.double() - rows.double().mean(0)
    std = x.std(0).clamp_min(1e-12)
    corr = (x.T @ x) / (len(x) - 1) / (std[:, None] * std[None, :])
    corr.fill_diagonal_(0.0)
    a = corr.clamp_min(0.0)
    keep = torch.zeros_like(a, dtype=torch.bool)
    keep.scatter_(1, a.topk(k, dim=1).indices, True)
    a = torch.where(keep, a, torch.zeros_like(a))
    return torch.maximum(a, a.T)


def normalized_laplacian(adj: Tensor) -> Tensor:
    """``I − D^{-1/2} A D^{-1/2}`` (isolated neurons get a zero row and column of ``D^{-1/2} A D^{-1/2}``)."""
    deg = adj.sum(1)
    inv = torch.where(deg > 0, deg.clamp_min(1e-30).rsqrt(), torch.zeros_like(deg))
    return torch.eye(len(adj), dtype=adj.dtype) - inv[:, None] * adj * inv[None, :]


def laplacian_penalty(w_dec: Tensor, lap: Tensor) -> Tensor:
    """``(1 / d_sae) Σ_j w_jᵀ L w_j`` over the rows ``w_j`` of ``w_dec`` (``[d_sae, d_in]``)."""
    return ((w_dec @ lap.to(w_dec.dtype)) * w_dec).sum() / w_dec.shape[0]
