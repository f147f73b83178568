"""Shrinkage covariance for whitening and Mahalanobis distances when ``n < d``.

A sample covariance of ``n`` rows in ``d`` dimensions has rank at most ``n - 1``; with the
few hundred prompts typical of refusal work and ``d`` in the thousands it cannot be inverted.
Shrinking it toward the scaled identity fixes that:

    Σ̂ = (1 - α) S + α μ I,   μ = tr(S) / d

with ``α`` either fixed or chosen by the Ledoit-Wolf (2004) formula, which minimises the
expected Frobenius error:

    δ² = ‖S - μI‖²_F,   β̄² = (1/n²) Σ_k ‖x_k x_kᵀ - S‖²_F = (Σ_k ‖x_k‖⁴ - n ‖S‖²_F) / n²,
    α = min(β̄², δ²) / δ²

for centred rows ``x_k`` and ``S = (1/n) Σ_k x_k x_kᵀ``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope.directions.checks import DirectionError

Shrinkage = float | str


@dataclass(frozen=True)
class ShrunkCovariance:
    """A covariance estimate ``(1 - shrinkage) S + shrinkage * target_scale * I``."""

    matrix: Float[Tensor, "d d"]
    shrinkage: float
    target_scale: float
    n: int

    def solve(self, v: Float[Tensor, "d ..."]) -> Float[Tensor, "d ..."]:
        """``Σ̂⁻¹ v`` by Cholesky; raises when ``Σ̂`` is singular (use shrinkage > 0)."""
        chol, info = torch.linalg.cholesky_ex(self.matrix)
        if int(info) != 0:
            raise DirectionError(
                f"The covariance of {self.n} rows in {self.matrix.shape[0]} dimensions is singular "
                f"(shrinkage={self.shrinkage:.3g}). Use shrinkage='ledoit_wolf' or a value in (0, 1]."
            )
        rhs = v.unsqueeze(-1) if v.ndim == 1 else v
        out = torch.cholesky_solve(rhs, chol)
        return out.squeeze(-1) if v.ndim == 1 else out


def ledoit_wolf_shrinkage(x: Float[Tensor, "n d"]) -> float:
    """The Ledoit-Wolf shrinkage intensity ``α ∈ [0, 1]`` for already centred rows ``x``."""
    n, d = x.shape
    s = x.T @ x / n
    mu = float(torch.trace(s)) / d
    delta2 = float(((s - mu * torch.eye(d, dtype=x.dtype)) ** 2).sum())
    if delta2 <= 0.0:
        return 0.0  # S is already a multiple of the identity
    fourth = float((x.pow(2).sum(1) ** 2).sum())
    beta2 = max(0.0, (fourth - n * float((s**2).sum())) / n**2)
    return min(beta2, delta2) / delta2


def shrunk_covariance(x: Float[Tensor, "n d"], shrinkage: Shrinkage = "ledoit_wolf") -> ShrunkCovariance:
    """Shrinkage covariance of already centred rows ``x`` (float64 recommended).

    Args:
        x: centred rows, ``[n, d]``.
        shrinkage: ``"ledoit_wolf"`` for the data-driven intensity, or a fixed ``α`` in ``[0, 1]``.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise DirectionError(f"Covariance needs [n >= 2, d] rows, got {tuple(x.shape)}.")
    n, d = x.shape
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit_wolf":
            raise DirectionError(f"Unknown shrinkage {shrinkage!r}; use 'ledoit_wolf' or a number in [0, 1].")
        alpha = ledoit_wolf_shrinkage(x)
    else:
        alpha = float(shrinkage)
        if not 0.0 <= alpha <= 1.0:
            raise DirectionError(f"shrinkage must lie in [0, 1], got {alpha}.")
    s = x.T @ x / n
    mu = float(torch.trace(s)) / d
    if mu <= 0.0:
        raise DirectionError("All rows are identical after centring: the covariance is zero.")
    matrix = (1.0 - alpha) * s + alpha * mu * torch.eye(d, dtype=x.dtype)
    return ShrunkCovariance(matrix, alpha, mu, n)


def pooled_within(a: Float[Tensor, "n d"], b: Float[Tensor, "m d"]) -> Float[Tensor, "nm d"]:
    """Rows of both classes, each centred on its own class mean (for the within-class covariance)."""
    return torch.cat([a - a.mean(0), b - b.mean(0)])
