"""Partial directional ablation with per-layer strengths: orthogonalization applied as activation edits.

The weight edit ``W ← W − α_l Q Qᵀ W`` of a writer (attention-out or MLP-out of layer ``l``, bias
included) changes its residual write ``c`` into ``c − α_l Q Qᵀ c``. :func:`kernel_ablate` makes
exactly that change with hooks at the ``attn_out`` / ``mlp_out`` sites, with separate strengths
for attention and MLP, so a search can score thousands of candidate edits without copying a
model; :func:`safetyscope.interventions.weights.orthogonalize` with ``layer_weights={l: (α_attn,
α_mlp)}`` bakes the same edit into the weights. On post-norm families (Gemma 2/3, OLMo 2) the
hook recovers the pre-norm output up to scale and renormalises, as
:func:`~safetyscope.interventions.hooks.ablate` does. ``α = 1`` is full ablation; ``α > 1``
over-ablates (reverses the component), as heretic's weights up to 1.5 do.

:func:`linear_kernel` is heretic's shape of per-layer strength: ``max_weight`` at ``peak``,
falling linearly to ``min_weight`` at ``distance`` layers away, and zero beyond.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.interventions.hooks import (
    InterventionError,
    check_width,
    norm_gain,
    orthonormal,
    project_out,
    writer_basis,
)
from safetyscope.model.loading import LoadedModel


def linear_kernel(
    n_layers: int, max_weight: float, peak: float, min_weight: float, distance: float
) -> dict[int, float]:
    """Strength per layer: ``max + (min − max)·|l − peak| / distance`` within ``distance`` of ``peak``, else 0."""
    if distance <= 0:
        raise InterventionError(f"Kernel distance must be positive, got {distance}.")
    out = {}
    for layer in range(n_layers):
        gap = abs(layer - peak)
        out[layer] = 0.0 if gap > distance else max_weight + (min_weight - max_weight) * gap / distance
    return out


@contextmanager
def kernel_ablate(
    lm: LoadedModel,
    directions: Tensor,
    attn_weights: Mapping[int, float],
    mlp_weights: Mapping[int, float],
    embed_weight: float = 0.0,
) -> Iterator[None]:
    """Remove ``α`` of the span of ``directions`` from each weighted residual write while the block is active.

    Args:
        directions: ``[d]`` or a ``[k, d]`` subspace (one basis for every layer).
        attn_weights: ``{layer: α}`` for the attention writes (missing layers: untouched).
        mlp_weights: ``{layer: α}`` for the MLP writes.
        embed_weight: ``α`` for the embedding write (``resid_pre`` 0); 0 leaves it alone.
    """
    check_width(lm, directions, "Direction")
    basis = orthonormal(directions)
    alpha: dict[Site, float] = {}
    if embed_weight:
        alpha[Site(0, "resid_pre")] = float(embed_weight)
    for point, weights in (("attn_out", attn_weights), ("mlp_out", mlp_weights)):
        for layer, a in weights.items():
            if not 0 <= layer < lm.n_layers:
                raise InterventionError(f"Layer {layer} out of range (model has {lm.n_layers} layers).")
            if a:
                alpha[Site(int(layer), point)] = float(a)  # type: ignore[arg-type]
    post: dict[Site, tuple[Tensor, Tensor]] = {}
    for site in alpha:
        if site.point == "resid_pre":
            continue
        which = "attn" if site.point == "attn_out" else "mlp"
        norm = lm.arch.attn_out_norm(site.layer) if which == "attn" else lm.arch.mlp_out_norm(site.layer)
        if norm is not None:
            post[site] = (norm_gain(norm, lm.d_model), writer_basis(lm, site.layer, which, basis))

    def write(site: Site, x: Tensor) -> Tensor:
        a = alpha[site]
        if site not in post:
            return x - a * (x - project_out(x, basis))
        gain, q = post[site]
        # as in hooks.ablate: u = x / g = y / s; the edited write is g ⊙ u' / sqrt(mean(u'²) + 1 − mean(u²))
        g = gain.to(device=x.device, dtype=torch.float32)
        u = x.float() / g
        u2 = u - a * (u - project_out(u, q))
        denom = (u2.pow(2).mean(-1, keepdim=True) + (1 - u.pow(2).mean(-1, keepdim=True)).clamp_min(0)).sqrt()
        return (g * u2 / denom.clamp_min(1e-30)).to(x.dtype)

    if not alpha:
        yield
        return
    with edit(lm.arch, list(alpha), write):
        yield
