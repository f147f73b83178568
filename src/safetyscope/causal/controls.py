"""The controls every causal claim is shown beside.

* :func:`random_like` — a random direction (or subspace, row-wise) with the same norms, seeded:
  does *any* direction of that size do the same?
* :func:`shuffled_labels` — the class labels permuted, seeded: is the contrast real, or would
  any split of the prompts give a direction?
* :func:`mean_ablation` — replace a site's activation by its mean over a reference set (instead
  of zero): removes the information a site carries without pushing it off-distribution.
* :func:`gaussian_noise` — add seeded Gaussian noise of a given norm (per token) at a site:
  how much does an edit of that size matter when it carries no information?

The two hook controls are built on :func:`safetyscope.activations.edit` and act at
:class:`~safetyscope.activations.Site` s like every other intervention.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.interventions.hooks import InterventionError, SiteSpec, check_width, resolve_sites
from safetyscope.model.loading import LoadedModel


def random_like(vector: Tensor, seed: int) -> Tensor:
    """A random direction (or subspace, row-wise) with the same norms as ``vector``, seeded (float32)."""
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(vector.shape, generator=g, dtype=torch.float32)
    return rand / rand.norm(dim=-1, keepdim=True) * vector.float().norm(dim=-1, keepdim=True)


def shuffled_labels(labels: Tensor | Sequence[int], seed: int) -> Tensor:
    """A seeded permutation of ``labels`` (same class counts, no relation to the inputs)."""
    y = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(seed)
    return y[torch.randperm(y.shape[0], generator=g)]


@contextmanager
def mean_ablation(lm: LoadedModel, means: Tensor | dict[Site, Tensor], sites: SiteSpec | None = None,
                  positions: str = "all") -> Iterator[None]:
    """Replace the activation at each site by a reference mean (``[d]``, or ``{Site: [d]}``).

    ``positions``: ``all`` tokens, or ``prompt`` (prompt pass only; generated tokens then read
    the ablated prompt through the KV cache).
    """
    if positions not in ("all", "prompt"):
        raise InterventionError("mean_ablation positions must be 'all' or 'prompt'.")
    if sites is None and isinstance(means, dict):
        sites = list(means)
    chosen = resolve_sites(lm, sites, what="mean_ablation")
    per = {s: (means[s] if isinstance(means, dict) else means) for s in chosen}
    for vec in per.values():
        check_width(lm, vec, "Mean")

    def write(site: Site, h: Tensor) -> Tensor:
        if positions == "prompt" and h.shape[1] == 1:
            return h
        return per[site].to(device=h.device, dtype=h.dtype).expand_as(h).clone()

    with edit(lm.arch, chosen, write):
        yield


@contextmanager
def gaussian_noise(lm: LoadedModel, norm: float, sites: SiteSpec, seed: int = 0,
                   positions: str = "all") -> Iterator[None]:
    """Add Gaussian noise of L2 norm ``norm`` to every token's activation at ``sites`` (seeded, reproducible).

    ``positions``: ``all`` tokens or ``prompt`` (prompt pass only).
    """
    if positions not in ("all", "prompt"):
        raise InterventionError("gaussian_noise positions must be 'all' or 'prompt'.")
    if not norm >= 0:
        raise InterventionError(f"noise norm must be >= 0, got {norm}.")
    chosen = resolve_sites(lm, sites, what="gaussian_noise")
    gen = torch.Generator().manual_seed(seed)

    def write(_site: Site, h: Tensor) -> Tensor:
        if positions == "prompt" and h.shape[1] == 1:
            return h
        noise = torch.randn(h.shape, generator=gen, dtype=torch.float32)
        noise = noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12) * norm
        return h + noise.to(device=h.device, dtype=h.dtype)

    with edit(lm.arch, chosen, write):
        yield
