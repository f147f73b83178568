"""PGD adversaries for AT (input-embedding space) and LAT (residual stream at a layer).

Both are the same attack at a different :class:`~safetyscope.activations.Site`, written with
:func:`safetyscope.activations.edit`: a perturbation ``δ`` is added to the request tokens at
``resid_pre`` of block 0 (the embeddings, **AT**) or of block ``layer`` (**LAT**, Casper et al.
2024; Sheshadri et al. 2024). Projected gradient descent with ``steps`` steps minimises the
cross-entropy of the *compliance* answer ("toward" loss) under an L2 budget per token:

    h'_t = h_t + ‖h_t‖ · δ_t,   ‖δ_t‖₂ ≤ ε   (t a request token; other tokens untouched)
    δ ← Π_ε(δ − α ∇_δ L / ‖∇_δ L‖)   per token,   α = 2.5 ε / steps

The budget is relative to the token's own clean norm at the site, so one ``ε`` means the same
thing at the embeddings and deep in the stream, and for models of any width (the papers fix an
absolute ε per model and layer). The model's parameters receive no gradient from the attack.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor

from safetyscope.activations import Site, edit
from safetyscope.errors import OptionError
from safetyscope.model.loading import LoadedModel
from safetyscope.training.tokens import Batch

__all__ = ["Adversary", "attack", "perturbed", "project"]


@dataclass(frozen=True)
class Adversary:
    """An L2 PGD adversary on request tokens at ``resid_pre`` of ``layer`` (0 = embeddings)."""

    kind: Literal["embedding", "latent"]
    epsilon: float = 0.5
    steps: int = 6
    layer: int = 0
    step_size: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("embedding", "latent"):
            raise OptionError(f"Unknown adversary {self.kind!r}; use embedding (AT) or latent (LAT).")
        if not self.epsilon > 0 or self.steps < 1:
            raise OptionError(
                f"Adversary needs epsilon > 0 and steps >= 1 (got {self.epsilon}, {self.steps})."
            )
        if self.kind == "embedding" and self.layer != 0:
            raise OptionError(
                "The embedding-space adversary (AT) acts at layer 0; use --method lat for a layer."
            )

    @property
    def site(self) -> Site:
        """Where ``δ`` is added."""
        return Site(self.layer, "resid_pre")

    @property
    def alpha(self) -> float:
        """PGD step size."""
        return self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.steps

    def check(self, lm: LoadedModel) -> None:
        """Raise :class:`OptionError` when ``layer`` is outside ``lm``."""
        if not 0 <= self.layer < lm.n_layers:
            raise OptionError(
                f"--layer {self.layer} is outside the model's {lm.n_layers} layers (0..{lm.n_layers - 1})."
            )

    def to_dict(self) -> dict[str, object]:
        """JSON form (with the effective step size)."""
        return asdict(self) | {"alpha": self.alpha, "site": self.site.key}


def project(delta: Tensor, epsilon: float) -> Tensor:
    """Project every token's ``δ_t`` onto the L2 ball of radius ``epsilon``."""
    norm = delta.norm(dim=-1, keepdim=True)
    return delta * (epsilon / norm.clamp_min(epsilon))


@contextmanager
def perturbed(lm: LoadedModel, site: Site, delta: Tensor, mask: Tensor) -> Iterator[None]:
    """Add ``‖h_t‖ · δ_t`` at ``site`` on the positions where ``mask`` is true (``δ``: ``[b, p, d]``)."""
    p = delta.shape[1]
    mask = mask[:, :p].to(delta.dtype).unsqueeze(-1)

    def write(_site: Site, x: Tensor) -> Tensor:
        t = min(p, x.shape[1])
        scale = x[:, :t].detach().float().norm(dim=-1, keepdim=True)
        add = (delta[:, :t] * mask[:, :t] * scale).to(x.dtype)
        if t == x.shape[1]:
            return x + add
        return torch.cat([x[:, :t] + add, x[:, t:]], dim=1)

    with edit(lm.arch, site, write):
        yield


def attack(lm: LoadedModel, adv: Adversary, batch: Batch, generator: torch.Generator) -> tuple[Tensor, float]:
    """PGD on ``batch`` (labels = compliance targets); return ``δ`` (``[b, p, d]``) and the final toward loss.

    ``p`` is the last request position + 1. ``δ`` starts uniformly inside the ball (seeded by
    ``generator``) and is zero off the request tokens.
    """
    model = lm.model
    p = int(batch.request.any(0).nonzero().max()) + 1
    mask = batch.request[:, :p]
    device = next(model.parameters()).device
    ids, labels = batch.input_ids.to(device), batch.labels.to(device)
    shape = (ids.shape[0], p, lm.d_model)
    noise = torch.randn(shape, generator=generator)
    radius = torch.rand((*shape[:2], 1), generator=generator) * adv.epsilon
    delta = (noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12) * radius).to(device)
    delta = delta * mask.to(device).unsqueeze(-1)
    mask = mask.to(device)
    loss_value = float("nan")
    for _ in range(adv.steps):
        delta.requires_grad_(True)
        with perturbed(lm, adv.site, delta, mask):
            loss = model(input_ids=ids, labels=labels).loss
        (grad,) = torch.autograd.grad(loss, delta)
        loss_value = float(loss.detach())
        step = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        delta = project(delta.detach() - adv.alpha * step, adv.epsilon) * mask.unsqueeze(-1)
    return delta.detach(), loss_value
