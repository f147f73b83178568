"""Is a concept one latent or a connected group of latents (a "concept cone", GSAE paper)?

Given latent activations on two prompt sets (harmful A, harmless B; one row per prompt), the mean
difference ``Δf_k = mean_A f_k − mean_B f_k`` of latent ``k`` contributes ``Δf_k · w_k`` (``w_k``
its decoder row) to the reconstructed difference of the two sets. Reported:

* ``n_significant``: latents whose composite score beats the shuffled-label maximum
  (:func:`safetyscope.sae.rank_latents`);
* ``n80``: the fewest latents whose positive contributions ``Δf_k·||w_k||`` reach 80 % of the total
  positive mass (1 = one latent carries the concept; many = spread);
* ``top1_share``: the share of the positive mass in the strongest latent;
* the *group*: the ``m`` latents with the largest ``Δf_k·||w_k||``; ``coherence`` = mean pairwise
  ``|cos|`` of their decoder rows; ``connected`` = size of the largest connected component of the
  group under edges ``|cos(w_i, w_j)| ≥ τ`` or co-activation correlation ``≥ τ`` (over A ∪ B);
* ``cos_group`` / ``cos_top1``: cosine of ``Σ_group Δf_k w_k`` / of ``w_top1`` with the reference
  direction (the difference of mean activations), i.e. how much of the concept direction the
  group and the single best latent each recover.

A concept cone shows as ``n80 > 1``, a large connected group and ``cos_group`` well above
``cos_top1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from safetyscope.errors import OptionError
from safetyscope.sae.features import rank_latents
from safetyscope.sae.model import SparseAutoencoder


@dataclass
class ConceptCone:
    """How a concept spreads over the latents of one SAE (module docstring)."""

    group: list[int]
    weights: list[float]
    n_significant: int
    n80: int
    top1_share: float
    coherence: float
    connected: int
    cos_group: float | None
    cos_top1: float | None
    tau: float

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


def _largest_component(adj: Tensor) -> int:
    n = adj.shape[0]
    seen, best = set(), 0
    for s in range(n):
        if s in seen:
            continue
        stack, size = [s], 0
        seen.add(s)
        while stack:
            u = stack.pop()
            size += 1
            for v in adj[u].nonzero().flatten().tolist():
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        best = max(best, size)
    return best


def _cos(a: Tensor, b: Tensor) -> float | None:
    den = float(a.norm() * b.norm())
    return None if den == 0 else float(a @ b) / den


def concept_cone(
    sae: SparseAutoencoder,
    acts_a: Tensor,
    acts_b: Tensor,
    *,
    m: int = 8,
    tau: float = 0.2,
    direction: Tensor | None = None,
    seed: int = 0,
) -> ConceptCone:
    """Measure the concept's spread over latents (module docstring); ``acts_*``: ``[n, d_sae]``."""
    if not 1 <= m <= acts_a.shape[1]:
        raise OptionError(f"m must be between 1 and d_sae ({acts_a.shape[1]}), got {m}.")
    w = sae.W_dec.detach().double()
    delta = acts_a.double().mean(0) - acts_b.double().mean(0)
    mass = delta.clamp_min(0) * w.norm(dim=1)
    total = float(mass.sum())
    if total <= 0:
        raise OptionError(
            "No latent is more active on the first prompt set: the concept has no positive latent."
        )
    order = mass.argsort(descending=True)
    cum = mass[order].cumsum(0) / total
    n80 = int((cum < 0.8).sum()) + 1
    group = order[:m].tolist()
    wg = w[group]
    unit = wg / wg.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit.T
    off = ~torch.eye(len(group), dtype=torch.bool)
    coherence = float(cos[off].abs().mean()) if len(group) > 1 else 1.0
    pooled = torch.cat([acts_a, acts_b]).double()[:, group]
    x = pooled - pooled.mean(0)
    sd = x.std(0).clamp_min(1e-12)
    corr = (x.T @ x) / max(1, len(x) - 1) / (sd[:, None] * sd[None, :])
    adj = ((cos.abs() >= tau) | (corr >= tau)) & off
    ranking = rank_latents(acts_a, acts_b, top_n=acts_a.shape[1], seed=seed)
    n_sig = sum(1 for r in ranking.top if r.score > ranking.null_max_score)
    group_vec = (delta[group, None] * wg).sum(0)
    ref = direction.double().flatten() if direction is not None else None
    return ConceptCone(
        group,
        delta[group].tolist(),
        n_sig,
        n80,
        float(mass[order[0]]) / total,
        coherence,
        _largest_component(adj),
        None if ref is None else _cos(group_vec, ref),
        None if ref is None else _cos(w[group[0]], ref),
        tau,
    )
