"""Weight orthogonalization ("abliteration"): bake a directional ablation into the weights.

Every matrix that writes into the residual stream (embedding, learned position embedding,
attention-out and MLP-out projections, with their biases) is projected so that its output has
no component along the direction(s): ``W ← W − Q Qᵀ W`` in output space. Variants:

* ``standard`` — exactly the hook ablation of :func:`safetyscope.interventions.hooks.ablate`.
* ``projected`` — the direction is first orthogonalized against the harmless mean, so the
  harmless-mean component of the stream is kept (projected abliteration).
* ``biprojected`` — projected, and each write vector keeps its original norm
  (norm-preserving biprojected abliteration).
* multi-direction — pass a ``[k, d]`` subspace to any method.
* ``layer_weights`` — optional per-layer strength ``α_l ∈ [0, 1]`` (``W ← W − α_l Q Qᵀ W``),
  e.g. from :func:`gaussian_kernel`, or a pair ``(α_attn, α_mlp)`` per layer; the embedding
  uses ``embed_weight``. :func:`safetyscope.interventions.kernel.kernel_ablate` is the same edit
  applied with hooks.
* ``components`` — edit only the named writers (circuit node names: ``a3`` the attention output
  of layer 3, ``a3.h1`` only head 1's columns of it, ``m3`` the MLP output; see
  :func:`parse_components`), e.g. those that patching or attribution names (component-targeted
  orthogonalization, compendium 5.5 step 4). The embedding is then left alone.
* :func:`orthogonalize_layers` — a different subspace per layer, each direction with its own
  strength (``W ← W − α_l Σ_i w_i q_i q_iᵀ W``): the form multi-direction methods such as
  Gabliteration (:mod:`safetyscope.interventions.gabliteration`) produce.

The input model is never modified: :func:`orthogonalize` returns an edited deep copy.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.hooks import orthonormal, writer_basis
from safetyscope.model.loading import LoadedModel

METHODS = ("standard", "projected", "biprojected")
_COMPONENT = re.compile(r"^(a|m)(\d+)(?:\.h(\d+))?$")


def parse_components(spec: str | Sequence[str], lm: LoadedModel) -> dict[tuple[str, int], list[int] | None]:
    """``"a3,a5.h2,m4"`` → ``{("attn", 3): None, ("attn", 5): [2], ("mlp", 4): None}`` (``None``: every head).

    Raises:
        SafetyscopeError: a name that is not ``aL``, ``aL.hH`` or ``mL``, or out of range.
    """
    names = [x.strip() for x in (spec.split(",") if isinstance(spec, str) else spec) if x.strip()]
    if not names:
        raise SafetyscopeError("No components given; use circuit node names such as a3, a3.h1, m4.")
    out: dict[tuple[str, int], list[int] | None] = {}
    n_heads = n_attention_heads(lm)
    for name in names:
        m = _COMPONENT.match(name)
        if m is None:
            raise SafetyscopeError(f"Component {name!r}: use aL (attention of layer L), aL.hH (head H) or mL (MLP).")
        which, layer = ("attn" if m.group(1) == "a" else "mlp"), int(m.group(2))
        if not 0 <= layer < lm.n_layers:
            raise SafetyscopeError(f"Component {name!r}: layer {layer} out of range (model has {lm.n_layers}).")
        if m.group(3) is None:
            out[(which, layer)] = None
            continue
        if which == "mlp":
            raise SafetyscopeError(f"Component {name!r}: an MLP has no heads; use m{layer}.")
        head = int(m.group(3))
        if not 0 <= head < n_heads:
            raise SafetyscopeError(f"Component {name!r}: head {head} out of range (model has {n_heads} heads).")
        if out.get((which, layer), []) is not None:
            out[(which, layer)] = sorted({*(out.get((which, layer)) or []), head})
    return out


def n_attention_heads(lm: LoadedModel) -> int:
    """Number of attention heads (query heads: those whose outputs ``o_proj`` mixes)."""
    cfg = lm.model.config.get_text_config() if hasattr(lm.model.config, "get_text_config") else lm.model.config
    return int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 1)


def gaussian_kernel(n_layers: int, peak: float, width: float, max_weight: float = 1.0,
                    min_weight: float = 0.0) -> dict[int, float]:
    """Per-layer strengths ``min + (max − min)·exp(−(l − peak)² / (2 width²))``."""
    return {layer: min_weight + (max_weight - min_weight) * math.exp(-((layer - peak) ** 2) / (2 * width**2))
            for layer in range(n_layers)}


def project_against(direction: Tensor, reference: Tensor) -> Tensor:
    """``r − (r·m̂) m̂``: the direction with its component along ``reference`` removed (unit norm)."""
    r, m = direction.double(), reference.double()
    m = m / m.norm()
    out = r - (r @ m) * m
    return (out / out.norm()).to(direction.dtype)


def _project_rows(mat: Tensor, q: Tensor, alpha: float, keep_norm: bool) -> Tensor:
    """Remove ``alpha`` of the span of ``q`` (rows, orthonormal) from each row of ``mat`` (``[..., d]``)."""
    qq = q.to(device=mat.device, dtype=torch.float64)
    m = mat.to(torch.float64)
    out = m - alpha * (m @ qq.T) @ qq
    if keep_norm:
        out = out * (m.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return out.to(mat.dtype)


def _edit_writer(module: nn.Module, q: Tensor, alpha: float, layout: str, keep_norm: bool,
                 heads: list[int] | None = None, n_heads: int = 1) -> None:
    """Project the write vectors of ``module`` (all of them, or only the columns of ``heads``)."""
    weight: Tensor = module.weight  # type: ignore[assignment]
    with torch.no_grad():
        vecs = weight.T if layout == "out_in" else weight  # [d_in, d_model]: one write vector per input unit
        if heads is None:
            vecs.copy_(_project_rows(vecs, q, alpha, keep_norm))
        else:  # the input of o_proj is head-major [n_heads * d_head]
            d_head = vecs.shape[0] // n_heads
            for h in heads:
                rows = slice(h * d_head, (h + 1) * d_head)
                vecs[rows] = _project_rows(vecs[rows], q, alpha, keep_norm)
        bias = getattr(module, "bias", None)
        if bias is not None and heads is None:  # a bias belongs to no single head
            bias.copy_(_project_rows(bias.unsqueeze(0), q, alpha, False)[0])


def _untie_unembedding(lm: LoadedModel) -> None:
    """Give the unembedding its own weights when it shares them with the embedding."""
    unembed, embed = lm.arch.unembed, lm.arch.embed
    if unembed.weight.data_ptr() == embed.weight.data_ptr():
        unembed.weight = nn.Parameter(embed.weight.detach().clone(), requires_grad=False)
        lm.model.config.tie_word_embeddings = False
        if hasattr(lm.model.config, "get_text_config"):
            lm.model.config.get_text_config().tie_word_embeddings = False


def orthogonalize(
    lm: LoadedModel,
    directions: Tensor,
    method: str = "standard",
    *,
    harmless_mean: Tensor | None = None,
    layer_weights: Mapping[int, float | tuple[float, float]] | None = None,
    embed_weight: float = 1.0,
    components: str | Sequence[str] | None = None,
) -> LoadedModel:
    """Return a copy of ``lm`` whose residual writers cannot write along ``directions``.

    Args:
        directions: ``[d]`` or a ``[k, d]`` subspace.
        method: ``standard``, ``projected`` or ``biprojected`` (see the module docstring).
        harmless_mean: mean harmless activation (``[d]``), required by the projected methods.
        layer_weights: strength per layer (default 1 everywhere), or ``(attention, MLP)`` strengths;
            missing layers are unedited.
        embed_weight: strength for the embedding(s).
        components: edit only these writers (``"a3,a5.h2,m4"``, :func:`parse_components`); the
            embedding is then not edited.
    """
    if method not in METHODS:
        raise SafetyscopeError(f"Unknown orthogonalization method {method!r}; use one of {METHODS}.")
    if directions.shape[-1] != lm.d_model:
        raise SafetyscopeError(f"Direction has dimension {directions.shape[-1]}, model d_model is {lm.d_model}.")
    if method != "standard":
        if harmless_mean is None:
            raise SafetyscopeError(f"Method {method!r} needs harmless_mean (the mean harmless activation).")
        rows = directions.reshape(-1, lm.d_model)
        directions = torch.stack([project_against(r, harmless_mean) for r in rows])
    basis = orthonormal(directions)
    keep_norm = method == "biprojected"
    weights = dict(layer_weights) if layer_weights is not None else dict.fromkeys(range(lm.n_layers), 1.0)
    targets = parse_components(components, lm) if components is not None else None
    edited = copy_for_edit(lm)
    layout = lm.arch.map.writer_weight_layout
    n_heads = n_attention_heads(lm)
    with torch.no_grad():
        for emb in (edited.arch.embed, edited.arch.pos_embed):
            if emb is not None and embed_weight and targets is None:
                emb.weight.copy_(_project_rows(emb.weight, basis, embed_weight, keep_norm))
        for layer, alpha in weights.items():
            pair = alpha if isinstance(alpha, tuple) else (alpha, alpha)
            for which, module, a in (("attn", edited.arch.attn_out(layer), pair[0]),
                                     ("mlp", edited.arch.mlp_out(layer), pair[1])):
                if not a or (targets is not None and (which, layer) not in targets):
                    continue
                q = writer_basis(edited, layer, which, basis)
                heads = targets.get((which, layer)) if targets is not None else None
                _edit_writer(module, q, float(a), layout, keep_norm, heads, n_heads)
    tag = method if targets is None else f"{method} on {','.join(sorted(_names(targets)))}"
    edited.spec = f"{lm.spec} [orthogonalized:{tag}]"
    return edited


def _names(targets: Mapping[tuple[str, int], list[int] | None]) -> list[str]:
    out = []
    for (which, layer), heads in targets.items():
        prefix = f"{which[0]}{layer}"
        out.extend([prefix] if heads is None else [f"{prefix}.h{h}" for h in heads])
    return out


def copy_for_edit(lm: LoadedModel) -> LoadedModel:
    """A deep copy of ``lm`` ready for weight edits (own architecture map, untied unembedding, no path)."""
    from safetyscope.model.architectures import resolve_architecture

    edited = copy.copy(lm)
    edited.model = copy.deepcopy(lm.model)
    edited.arch = resolve_architecture(edited.model, lm.arch.map)
    edited._fingerprint = None
    _untie_unembedding(edited)
    edited.path = None
    return edited


def orthogonalize_layers(
    lm: LoadedModel,
    subspaces: Mapping[int, tuple[Tensor, Tensor]],
    *,
    layer_weights: Mapping[int, float] | None = None,
    embed: tuple[Tensor, Tensor] | None = None,
    embed_weight: float = 1.0,
) -> LoadedModel:
    """A copy of ``lm`` with layer ``l``'s writers edited by ``W ← W − α_l Σ_i w_i q_i q_iᵀ W``.

    Args:
        subspaces: ``{layer: (Q [k, d] orthonormal rows, w [k] strengths in [0, 1])}``; layers not
            listed are not edited. With every ``w_i = 1`` and ``α_l = 1`` this is
            :func:`orthogonalize` (``standard``) with a per-layer basis.
        layer_weights: ``α_l`` (default 1).
        embed: ``(Q, w)`` for the embedding(s) (default: not edited), scaled by ``embed_weight``.

    Directions are applied one after another (exact for orthonormal rows; on post-norm families
    each is first mapped through :func:`~safetyscope.interventions.hooks.writer_basis`).
    """
    for layer, (q, w) in subspaces.items():
        if not 0 <= layer < lm.n_layers:
            raise SafetyscopeError(f"Layer {layer} out of range for a model with {lm.n_layers} layers.")
        if q.ndim != 2 or q.shape[-1] != lm.d_model or w.shape != (q.shape[0],):
            raise SafetyscopeError(f"Layer {layer}: need Q [k, {lm.d_model}] and w [k], got {tuple(q.shape)} "
                                   f"and {tuple(w.shape)}.")
    edited = copy_for_edit(lm)
    layout = lm.arch.map.writer_weight_layout
    alphas = dict(layer_weights) if layer_weights is not None else {}
    with torch.no_grad():
        if embed is not None and embed_weight:
            for emb in (edited.arch.embed, edited.arch.pos_embed):
                if emb is not None:
                    for row, w in zip(orthonormal(embed[0]), embed[1].tolist(), strict=True):
                        emb.weight.copy_(_project_rows(emb.weight, row[None], embed_weight * w, False))
        for layer, (q, w) in subspaces.items():
            alpha = float(alphas.get(layer, 1.0))
            if not alpha:
                continue
            for which, module in (("attn", edited.arch.attn_out(layer)), ("mlp", edited.arch.mlp_out(layer))):
                for row, strength in zip(orthonormal(q), w.tolist(), strict=True):
                    if strength:
                        _edit_writer(module, writer_basis(edited, layer, which, row[None]), alpha * strength,
                                     layout, False)
    edited.spec = f"{lm.spec} [orthogonalized:per-layer]"
    return edited
