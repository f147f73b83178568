"""L2-regularised logistic regression in torch: the one fitting routine behind probe directions.

Minimises the mean binary cross-entropy plus ``(l2 / 2) ‖w‖²`` on rows that are centred and
divided by one scalar (their RMS coordinate), so ``l2`` means the same at any activation scale
and the optimum is unique (strictly convex for ``l2 > 0``). Optimised with L-BFGS from zero
in float64, so fits are deterministic. The weights are mapped back to the original
coordinates: ``p(y=1 | x) = σ(wᵀx + b)``. Used by :mod:`safetyscope.directions.extract`
(the ``probe`` method) and :mod:`safetyscope.analysis.probes` (layer-wise probes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from safetyscope.directions.checks import DirectionError
from safetyscope.threads import threads_for


@dataclass(frozen=True)
class LogisticFit:
    """A fitted logistic regression: ``p(y=1 | x) = sigmoid(weight · x + bias)``.

    Attributes:
        weight: ``[d]`` weights in the coordinates of the training rows.
        bias: intercept.
        l2: the regularisation strength used (in standardised units).
        n_iter: L-BFGS iterations run.
        loss: final regularised training loss.
        train_accuracy: accuracy on the training rows.
    """

    weight: Float[Tensor, " d"]
    bias: float
    l2: float
    n_iter: int
    loss: float
    train_accuracy: float

    def decision(self, x: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """The logit ``weight · x + bias`` for each row."""
        return x.to(self.weight.dtype) @ self.weight + self.bias

    def proba(self, x: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """``p(y = 1)`` for each row."""
        return torch.sigmoid(self.decision(x))

    def predict(self, x: Float[Tensor, "n d"]) -> Bool[Tensor, " n"]:
        """Predicted labels (``True`` = class 1)."""
        return self.decision(x) > 0


def fit_logistic(
    x: Float[Tensor, "n d"],
    y: Tensor,
    *,
    l2: float = 1e-2,
    max_iter: int = 200,
    tol: float = 1e-10,
) -> LogisticFit:
    """Fit an L2-regularised logistic regression.

    Args:
        x: ``[n, d]`` rows (any float dtype; fitted in float64).
        y: ``[n]`` labels in ``{0, 1}`` (bool or integer); both classes must occur.
        l2: regularisation strength on the standardised weights (``> 0`` keeps the problem
            well posed when the classes are separable or ``n < d``).
        max_iter: L-BFGS iteration cap.
        tol: gradient / change tolerance of L-BFGS.
    """
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DirectionError(f"Logistic regression needs x [n, d] and y [n]; got {tuple(x.shape)}, {tuple(y.shape)}.")
    if l2 < 0:
        raise DirectionError(f"l2 must be >= 0, got {l2}.")
    with torch.inference_mode(False), torch.enable_grad(), threads_for(x.numel()):
        labels = y.detach().to("cpu", torch.float64).clone()
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise DirectionError("Labels must be 0/1.")
        if labels.min() == labels.max():
            raise DirectionError("Logistic regression needs rows of both classes.")
        data = x.detach().to("cpu", torch.float64).clone()
        centre = data.mean(0)
        scale = float((data - centre).pow(2).mean().sqrt()) or 1.0
        z = (data - centre) / scale
        w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                                tolerance_change=tol, history_size=20, line_search_fn="strong_wolfe")

        def objective() -> Tensor:
            return F.binary_cross_entropy_with_logits(z @ w + b, labels) + 0.5 * l2 * (w @ w)

        def closure() -> Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            loss = float(objective())
            weight = (w / scale).detach().clone()
            bias = float(b - (centre @ w) / scale)
            acc = float(((z @ w + b > 0).to(torch.float64) == labels).to(torch.float64).mean())
        n_iter = int(opt.state[opt._params[0]].get("n_iter", 0))
    return LogisticFit(weight=weight, bias=bias, l2=l2, n_iter=n_iter, loss=loss, train_accuracy=acc)
