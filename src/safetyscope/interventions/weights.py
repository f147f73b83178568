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

The input model is never modified: :func:`orthogonalize` returns an edited deep copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.hooks import orthonormal, writer_basis
from safetyscope.model.loading import LoadedModel

METHODS = ("standard", "projected", "biprojected")


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


def _edit_writer(module: nn.Module, q: Tensor, alpha: float, layout: str, keep_norm: bool) -> None:
    weight: Tensor = module.weight  # type: ignore[assignment]
    with torch.no_grad():
        if layout == "out_in":  # y = W x + b, W: [d_model, d_in]; write vectors are W's columns
            weight.copy_(_project_rows(weight.T, q, alpha, keep_norm).T)
        else:  # GPT-2 Conv1D: y = x W + b, W: [d_in, d_model]; write vectors are W's rows
            weight.copy_(_project_rows(weight, q, alpha, keep_norm))
        bias = getattr(module, "bias", None)
        if bias is not None:
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
) -> LoadedModel:
    """Return a copy of ``lm`` whose residual writers cannot write along ``directions``.

    Args:
        directions: ``[d]`` or a ``[k, d]`` subspace.
        method: ``standard``, ``projected`` or ``biprojected`` (see the module docstring).
        harmless_mean: mean harmless activation (``[d]``), required by the projected methods.
        layer_weights: strength per layer (default 1 everywhere), or ``(attention, MLP)`` strengths;
            missing layers are unedited.
        embed_weight: strength for the embedding(s).
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
    edited = copy.copy(lm)
    edited.model = copy.deepcopy(lm.model)
    from safetyscope.model.architectures import resolve_architecture

    edited.arch = resolve_architecture(edited.model, lm.arch.map)
    edited._fingerprint = None
    _untie_unembedding(edited)
    layout = lm.arch.map.writer_weight_layout
    with torch.no_grad():
        for emb in (edited.arch.embed, edited.arch.pos_embed):
            if emb is not None and embed_weight:
                emb.weight.copy_(_project_rows(emb.weight, basis, embed_weight, keep_norm))
        for layer, alpha in weights.items():
            pair = alpha if isinstance(alpha, tuple) else (alpha, alpha)
            for which, module, a in (("attn", edited.arch.attn_out(layer), pair[0]),
                                     ("mlp", edited.arch.mlp_out(layer), pair[1])):
                if a:
                    _edit_writer(module, writer_basis(edited, layer, which, basis), float(a), layout, keep_norm)
    edited.spec = f"{lm.spec} [orthogonalized:{method}]"
    edited.path = None
    return edited
