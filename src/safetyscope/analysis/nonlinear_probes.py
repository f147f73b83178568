"""Probes beyond linear: truncated polynomial classifiers and a one-hidden-layer MLP (compendium 4.6).

**Truncated polynomial classifier** (TPC; Oldfield et al. 2025, arXiv 2509.26238). On rows
standardised as in :func:`~safetyscope.directions.fit_logistic` (``z = (x - c) / s``, one scalar
``s``) the order-``N`` polynomial is

    f_N(z) = b + wᵀz + Σ_{k=2..N} Σ_{r=1..R} λ_{k,r} (u_{k,r}ᵀ z)^k

each order's weight tensor in a rank-``R`` symmetric CP form (so an order costs ``R`` dot
products, not ``d^k`` terms). Training is progressive: order 1 is the logistic probe; order
``k`` is then fitted with orders ``< k`` frozen (L-BFGS on the mean cross-entropy of ``f_k`` plus
``(l2/2)(‖U_k‖² + ‖λ_k‖²)``), so every truncation ``f_n`` (``n ≤ N``) is itself a trained
classifier and a monitor can stop after any order: a degree-3 fit truncated at 2 is exactly the
degree-2 fit (same seed). ``truncate`` picks the order a scorer evaluates.

**MLP probe**: ``σ(w₂ᵀ relu(W₁ z + b₁) + b₂)``, full-batch Adam with weight decay ``l2``, a fixed
number of steps from a seeded initialisation (deterministic on CPU).

Both return :data:`~safetyscope.analysis.probes.Fitter` s for
:func:`~safetyscope.analysis.probes.probe_layers`, which adds the split, the shuffled-label
control and selectivity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from safetyscope.analysis.probes import Fitter
from safetyscope.directions.checks import DirectionError
from safetyscope.directions.logistic import fit_logistic
from safetyscope.threads import threads_for


def _standardise(x: Tensor) -> tuple[Tensor, Tensor, float]:
    data = x.detach().to("cpu", torch.float64)
    centre = data.mean(0)
    scale = float((data - centre).pow(2).mean().sqrt()) or 1.0
    return (data - centre) / scale, centre, scale


def _check(x: Tensor, y: Tensor) -> Tensor:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DirectionError(f"A probe needs x [n, d] and y [n]; got {tuple(x.shape)}, {tuple(y.shape)}.")
    labels = y.detach().to("cpu", torch.float64)
    if labels.min() == labels.max():
        raise DirectionError("A probe needs rows of both classes.")
    return labels


@dataclass
class PolynomialProbe:
    """A fitted truncated polynomial classifier (see the module docstring).

    ``factors[k - 2] = (U_k [R, d], λ_k [R])`` for orders ``k = 2..degree``, in standardised units.
    """

    weight: Float[Tensor, " d"]  # order 1, original coordinates
    bias: float
    centre: Float[Tensor, " d"]
    scale: float
    factors: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    @property
    def degree(self) -> int:
        """Highest order fitted."""
        return 1 + len(self.factors)

    def decision(self, x: Float[Tensor, "n d"], order: int | None = None) -> Float[Tensor, " n"]:
        """The logit ``f_order(x)`` (default: every fitted order)."""
        n = self.degree if order is None else order
        if not 1 <= n <= self.degree:
            raise DirectionError(f"Truncation order must lie in 1..{self.degree}, got {n}.")
        xd = x.detach().to("cpu", torch.float64)
        out = xd @ self.weight + self.bias
        z = (xd - self.centre) / self.scale
        for k, (u, lam) in enumerate(self.factors[: n - 1], start=2):
            out = out + (z @ u.T).pow(k) @ lam
        return out


def fit_polynomial(
    x: Float[Tensor, "n d"],
    y: Tensor,
    *,
    degree: int = 2,
    rank: int = 4,
    l2: float = 1e-2,
    seed: int = 0,
    max_iter: int = 200,
) -> PolynomialProbe:
    """Fit a truncated polynomial classifier progressively, order by order (module docstring)."""
    if degree < 1 or rank < 1:
        raise DirectionError(f"degree and rank must be >= 1, got {degree} and {rank}.")
    labels = _check(x, y)
    lin = fit_logistic(x, y, l2=l2, max_iter=max_iter)
    z, centre, scale = _standardise(x)
    probe = PolynomialProbe(lin.weight, lin.bias, centre, scale)
    gen = torch.Generator().manual_seed(seed)
    with torch.inference_mode(False), torch.enable_grad(), threads_for(x.numel() * rank):
        for k in range(2, degree + 1):
            offset = probe.decision(x).detach()
            u = torch.randn(rank, z.shape[1], generator=gen, dtype=torch.float64) / z.shape[1] ** 0.5
            u.requires_grad_(True)
            lam = torch.zeros(rank, dtype=torch.float64, requires_grad=True)
            opt = torch.optim.LBFGS(
                [u, lam],
                lr=1.0,
                max_iter=max_iter,
                tolerance_grad=1e-9,
                tolerance_change=1e-12,
                history_size=20,
                line_search_fn="strong_wolfe",
            )

            def closure(
                u: Tensor = u,
                lam: Tensor = lam,
                offset: Tensor = offset,
                k: int = k,
                opt: torch.optim.LBFGS = opt,
            ) -> Tensor:
                opt.zero_grad()
                logit = offset + (z @ u.T).pow(k) @ lam
                loss = F.binary_cross_entropy_with_logits(logit, labels) + 0.5 * l2 * (
                    u.pow(2).sum() + lam @ lam
                )
                loss.backward()
                return loss

            opt.step(closure)
            probe.factors.append((u.detach().clone(), lam.detach().clone()))
    return probe


@dataclass
class MLPProbe:
    """A fitted one-hidden-layer ReLU probe on standardised rows."""

    w1: Float[Tensor, "h d"]
    b1: Float[Tensor, " h"]
    w2: Float[Tensor, " h"]
    b2: float
    centre: Float[Tensor, " d"]
    scale: float

    def decision(self, x: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """The logit for each row."""
        z = (x.detach().to("cpu", torch.float64) - self.centre) / self.scale
        return torch.relu(z @ self.w1.T + self.b1) @ self.w2 + self.b2


def fit_mlp(
    x: Float[Tensor, "n d"],
    y: Tensor,
    *,
    hidden: int = 32,
    l2: float = 1e-2,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
) -> MLPProbe:
    """Fit an MLP probe: full-batch Adam, weight decay ``l2``, ``steps`` steps from a seeded init."""
    if hidden < 1 or steps < 1:
        raise DirectionError(f"hidden and steps must be >= 1, got {hidden} and {steps}.")
    labels = _check(x, y)
    z, centre, scale = _standardise(x)
    d = z.shape[1]
    gen = torch.Generator().manual_seed(seed)
    with torch.inference_mode(False), torch.enable_grad(), threads_for(x.numel() * hidden):
        w1 = (torch.randn(hidden, d, generator=gen, dtype=torch.float64) / d**0.5).requires_grad_(True)
        b1 = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
        w2 = (torch.randn(hidden, generator=gen, dtype=torch.float64) / hidden**0.5).requires_grad_(True)
        b2 = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([w1, b1, w2, b2], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            logit = torch.relu(z @ w1.T + b1) @ w2 + b2
            loss = F.binary_cross_entropy_with_logits(logit, labels) + 0.5 * l2 * (w1.pow(2).sum() + w2 @ w2)
            loss.backward()
            opt.step()
    return MLPProbe(w1.detach(), b1.detach(), w2.detach(), float(b2.detach()), centre, scale)


def polynomial_fitter(
    degree: int = 2, rank: int = 4, l2: float = 1e-2, seed: int = 0, truncate: int | None = None
) -> Fitter:
    """A :data:`Fitter` for a degree-``degree`` TPC scored at order ``truncate`` (default: all orders)."""

    def fit(x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        probe = fit_polynomial(x, y, degree=degree, rank=rank, l2=l2, seed=seed)
        return lambda rows: probe.decision(rows, truncate)

    return fit


def mlp_fitter(hidden: int = 32, l2: float = 1e-2, steps: int = 300, seed: int = 0) -> Fitter:
    """A :data:`Fitter` for the MLP probe."""

    def fit(x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        return fit_mlp(x, y, hidden=hidden, l2=l2, steps=steps, seed=seed).decision

    return fit
