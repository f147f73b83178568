"""Inference-time interventions on the residual stream, built on :func:`safetyscope.activations.edit`.

* :func:`add` — activation addition ``h ← h + scale·v`` at chosen sites.
* :func:`ablate` — directional ablation ``c ← c − r̂ r̂ᵀ c`` of a direction or subspace from every
  residual write (the embedding, i.e. ``resid_pre`` 0, and every ``attn_out`` and ``mlp_out``),
  so the direction never enters the stream.
* :func:`affine_edit` — affine concept editing (Marshall et al.):
  ``v ← v − proj_r(v) + proj_r(μ⁻) + α r̂``.

Every write goes through :func:`~safetyscope.activations.edit`, so a site means the same tensor
for reading and writing: a :class:`~safetyscope.directions.Direction` read at ``resid_post`` L
is added at ``resid_post`` L (the input of block L+1), never one block early. A direction
applied without explicit ``sites`` is written at its own site; a bare tensor without sites is
an error (there is no default layer).

All hooks act on every forward pass inside the block, so they also cover tokens produced by
KV-cached generation. Compose several with ``contextlib.ExitStack`` or :func:`compose`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.directions.checks import check_scalar, check_vector
from safetyscope.directions.direction import Direction
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

#: Where to write: one site, a layer number (its ``resid_pre``), or a list of either.
SiteSpec = Site | int | Sequence[Site | int]
#: A vector: one ``[d]`` tensor for every site, ``[n_layers, d]`` (row per layer), or ``{layer|Site: [d]}``.
VectorSpec = Tensor | Mapping[Any, Tensor]


class InterventionError(SafetyscopeError):
    """An intervention got unusable input (no site, wrong width, layer out of range)."""


def orthonormal(directions: Tensor) -> Float[Tensor, "k d"]:
    """Orthonormal basis (rows) of the span of ``directions`` (``[d]`` or ``[k, d]``), float32."""
    mat = directions.detach().to(torch.float32).reshape(-1, directions.shape[-1])
    if not torch.isfinite(mat).all() or (mat.norm(dim=-1) == 0).any():
        raise InterventionError("Directions must be finite and non-zero.")
    q, _ = torch.linalg.qr(mat.T)
    return q.T.contiguous()


def project_out(x: Tensor, basis: Tensor) -> Tensor:
    """``x − (x Qᵀ) Q`` for an orthonormal basis ``Q`` (``[k, d]``), in ``x``'s dtype."""
    q = basis.to(device=x.device, dtype=x.dtype)
    return x - (x @ q.T) @ q


def norm_gain(norm: nn.Module, d: int) -> Float[Tensor, " d"]:
    """Elementwise gain ``g`` of an RMS-style norm (``norm(x) = g ⊙ x / rms(x)``), read by probing."""
    weight = next(norm.parameters())
    probe = torch.full((1, d), 1000.0, dtype=torch.float32, device=weight.device)
    with torch.no_grad():
        return (norm.float()(probe) if weight.dtype != torch.float32 else norm(probe))[0].float().cpu()


def writer_basis(lm: LoadedModel, layer: int, which: str, basis: Tensor) -> Tensor:
    """Basis to project out of a writer's (pre-norm) *weights* so that its residual write is ``basis``-free.

    Without a post-norm this is ``basis``. With an RMS post-norm of gain ``g`` the write is
    ``g ⊙ y / rms(y)``, which is orthogonal to ``r`` exactly when ``y ⊥ g ⊙ r``. Used by
    weight orthogonalization; hook ablation projects the (post-norm) write itself.
    """
    norm = lm.arch.attn_out_norm(layer) if which == "attn" else lm.arch.mlp_out_norm(layer)
    if norm is None:
        return basis
    return orthonormal(basis * norm_gain(norm, lm.d_model))


def check_width(lm: LoadedModel, vector: Tensor, what: str) -> None:
    """Raise :class:`InterventionError` unless ``vector``'s last axis is the model's ``d_model``."""
    if vector.shape[-1] != lm.d_model:
        raise InterventionError(f"{what} has dimension {vector.shape[-1]} but the model's d_model is {lm.d_model}.")


def resolve_sites(lm: LoadedModel, sites: SiteSpec | None, direction: Direction | None = None,
                  what: str = "intervention") -> list[Site]:
    """The sites to write: ``sites`` (an int ``L`` means ``Site(L, "resid_pre")``), else ``direction``'s own.

    Raises:
        InterventionError: no sites and no direction site (never a guessed default layer), or a
            layer beyond the model's last.
    """
    if sites is None:
        site = direction.site if direction is not None else None
        if direction is not None and site is None and direction.layer is not None:
            raise InterventionError(
                f"{what}: the direction records layer {direction.layer} but not the stream point it was read at. "
                f"Pass sites=Site({direction.layer}, 'resid_pre' or 'resid_post') (CLI: --layers) or save it with point=.")
        if site is None:
            raise InterventionError(
                f"{what}: no site to write at. Pass sites= (e.g. Site(8, 'resid_post') or a layer number) "
                "or a Direction that records the site it was read at.")
        chosen = [site]
    else:
        items = [sites] if isinstance(sites, Site | int) else list(sites)
        chosen = [s if isinstance(s, Site) else Site(int(s)) for s in items]
    if not chosen:
        raise InterventionError(f"{what}: empty list of sites.")
    bad = [s.key for s in chosen if s.layer >= lm.n_layers]
    if bad:
        raise InterventionError(f"{what}: sites {bad} out of range (model has {lm.n_layers} layers, 0..{lm.n_layers - 1}).")
    return list(dict.fromkeys(chosen))


def per_site(lm: LoadedModel, vectors: VectorSpec, sites: list[Site], what: str) -> dict[Site, Tensor]:
    """One ``[d]`` vector per site from a shared vector, a ``[n_layers, d]`` stack or a mapping."""
    if isinstance(vectors, Mapping):
        out: dict[Site, Tensor] = {}
        for site in sites:
            vec = vectors.get(site, vectors.get(site.layer))
            if vec is None:
                raise InterventionError(f"{what}: no vector for site {site.key}; keys: {list(vectors)}.")
            out[site] = vec
    elif vectors.dim() == 2 and vectors.shape[0] == lm.n_layers:
        out = {site: vectors[site.layer] for site in sites}
    else:
        out = {site: vectors for site in sites}
    for vec in out.values():
        check_width(lm, vec, what)
        check_vector(vec, what, nonzero=what != "Harmless mean")  # NaN/inf/zero never reach the model
    return out


def _sites_arg(sites: SiteSpec | None, layers: SiteSpec | None) -> SiteSpec | None:
    if sites is not None and layers is not None:
        raise InterventionError("Pass sites= or layers=, not both.")
    return sites if sites is not None else layers


@contextmanager
def add(lm: LoadedModel, vector: VectorSpec | Direction, scale: float = 1.0, sites: SiteSpec | None = None,
        positions: str = "all", *, layers: SiteSpec | None = None) -> Iterator[None]:
    """Activation addition: ``h[site] += scale * vector`` while the block is active.

    Args:
        vector: ``[d]`` (same at every site), ``[n_layers, d]``, ``{layer or Site: [d]}``, or a
            :class:`~safetyscope.directions.Direction`, added at its natural magnitude
            (``mean_gap``, so ``scale=1`` moves a harmless activation onto the harmful mean).
        scale: multiplier.
        sites: where to add; default the Direction's own site (a bare tensor needs sites).
            Integers are ``resid_pre`` of that layer. ``layers=`` is an alias.
        positions: ``all`` tokens (prompt and generated); ``prompt`` (every prompt token, on
            the prompt pass only: generated tokens then read the steered prompt through the KV
            cache); or ``last`` (the last token of each forward pass: the final prompt token,
            then every generated token).
    """
    if positions not in ("all", "prompt", "last"):
        raise InterventionError("positions must be 'all', 'prompt' or 'last'.")
    direction = vector if isinstance(vector, Direction) else None
    chosen = resolve_sites(lm, _sites_arg(sites, layers), direction, "add")
    if direction is not None:
        vector = (direction.vector * direction.mean_gap).float()
    per = per_site(lm, vector, chosen, "Steering vector")  # type: ignore[arg-type]
    scale = check_scalar(scale, "scale")

    def write(site: Site, h: Tensor) -> Tensor:
        delta = (scale * per[site]).to(device=h.device, dtype=h.dtype)
        if positions == "all" or (positions == "prompt" and h.shape[1] > 1):
            return h + delta
        if positions == "prompt":
            return h
        h = h.clone()
        h[:, -1] += delta
        return h

    with edit(lm.arch, chosen, write):
        yield


def writer_sites(lm: LoadedModel) -> list[Site]:
    """Every residual write: the embedding (``resid_pre`` 0) and each block's ``attn_out`` and ``mlp_out``."""
    return [Site(0, "resid_pre")] + [Site(layer, p) for layer in range(lm.n_layers) for p in ("attn_out", "mlp_out")]


@contextmanager
def ablate(lm: LoadedModel, directions: Tensor | Direction) -> Iterator[None]:
    """Directional ablation of a direction (``[d]``) or subspace (``[k, d]``) from every residual write.

    The embedding (``resid_pre`` 0: token plus any learned position embedding) and every
    ``attn_out`` and ``mlp_out`` write (after any post-norm) are projected onto the orthogonal
    complement, so the residual stream never carries the direction, at any layer or position
    (generated tokens included). A :class:`~safetyscope.directions.Direction` ablates its basis
    (or vector). Equivalent to :func:`safetyscope.interventions.weights.orthogonalize` with
    method ``standard``: on post-norm families (Gemma 2/3, OLMo 2) the write read at the
    ``attn_out`` / ``mlp_out`` site is ``g ⊙ y / rms(y)``; the hook recovers ``y`` up to scale
    and returns the normalised write of ``y`` projected against ``g ⊙ r``, exactly what the
    weight edit produces (see :func:`writer_basis`).
    """
    if isinstance(directions, Direction):
        directions = (directions.basis if directions.basis is not None else directions.vector).float()
    check_width(lm, directions, "Direction")
    basis = orthonormal(directions)
    post: dict[Site, tuple[nn.Module, Tensor, Tensor]] = {}  # post-norm writers: norm, gain, weight-space basis
    for site in writer_sites(lm):
        if site.point == "resid_pre":
            continue
        which = "attn" if site.point == "attn_out" else "mlp"
        norm = lm.arch.attn_out_norm(site.layer) if which == "attn" else lm.arch.mlp_out_norm(site.layer)
        if norm is not None:
            post[site] = (norm, norm_gain(norm, lm.d_model), writer_basis(lm, site.layer, which, basis))

    def write(site: Site, x: Tensor) -> Tensor:
        if site not in post:
            return project_out(x, basis)
        _norm, gain, q = post[site]
        # x = g ⊙ y / sqrt(mean(y²) + eps). With u = x / g = y / s, the weight-edited write is
        # g ⊙ u' / sqrt(mean(u'²) + 1 − mean(u²)) for u' = u − proj_q(u) (eps cancels exactly).
        g = gain.to(device=x.device, dtype=torch.float32)
        u = x.float() / g
        u2 = project_out(u, q)
        denom = (u2.pow(2).mean(-1, keepdim=True) + (1 - u.pow(2).mean(-1, keepdim=True)).clamp_min(0)).sqrt()
        return (g * u2 / denom.clamp_min(1e-30)).to(x.dtype)

    with edit(lm.arch, writer_sites(lm), write):
        yield


@contextmanager
def affine_edit(lm: LoadedModel, direction: VectorSpec | Direction, harmless_mean: VectorSpec,
                alpha: float = 0.0, sites: SiteSpec | None = None, *,
                layers: SiteSpec | None = None) -> Iterator[None]:
    """Affine concept editing: ``v ← v − (v·r̂) r̂ + (μ⁻·r̂) r̂ + α r̂`` at ``sites``.

    Sets every prompt's coordinate along ``r̂`` to the harmless reference level plus ``α``:
    ``α = 0`` gives the harmless level, ``α = (μ⁺ − μ⁻)·r̂`` the harmful level. ``sites``
    default to the Direction's own site (integers are ``resid_pre`` of that layer); the
    harmless mean must be read at the same site.
    """
    d = direction if isinstance(direction, Direction) else None
    chosen = resolve_sites(lm, _sites_arg(sites, layers), d, "affine_edit")
    dirs = per_site(lm, d.vector.float() if d is not None else direction, chosen, "Direction")  # type: ignore[arg-type]
    means = per_site(lm, harmless_mean, chosen, "Harmless mean")
    unit = {s: dirs[s].float() / dirs[s].float().norm() for s in chosen}
    level = {s: float(means[s].float() @ unit[s]) + alpha for s in chosen}

    def write(site: Site, h: Tensor) -> Tensor:
        rr = unit[site].to(device=h.device, dtype=h.dtype)
        return h - (h @ rr).unsqueeze(-1) * rr + level[site] * rr

    with edit(lm.arch, chosen, write):
        yield


@contextmanager
def compose(*managers: Any) -> Iterator[None]:
    """Enter several intervention context managers at once (exited in reverse order)."""
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield
