"""Gabliteration (Gülmez, arXiv 2512.18901): multi-direction weight orthogonalization with a
ridge-regularised projector, separability-based layer selection and adaptive per-layer scaling.

For each layer ``l`` the harmful and harmless activations ``H_l, B_l ∈ R^{n×d}`` (``resid_post`` of
``l``, the stream that layer's writers add to, at the last end-of-instruction token) are paired
row by row:

1. **Directions** — the SVD of the paired-difference matrix ``D_l = H_l − B_l = U Σ Vᵀ``; the top
   ``k`` right singular vectors ``v_1..v_k`` (each oriented so harmful projects higher).
2. **Regularised projection** — ``P_λ = R (RᵀR + λI)⁻¹ Rᵀ`` with ``R = [s_1 v_1, …, s_k v_k]``,
   ``s_i = σ_i / σ_1``. Its eigenvectors are the ``v_i`` with eigenvalues ``w_i = s_i² / (s_i² + λ)``:
   ``λ = 0`` is the exact projector onto the span; ``λ > 0`` shrinks weak (noisy) directions most.
3. **Layer selection** — separability ``sep_l = ‖μ_H − μ_B‖ / (σ_H + σ_B)`` (``σ`` the root mean
   squared distance of a class to its mean); layers with ``sep_l ≥ layer_threshold · max sep``
   are edited.
4. **Adaptive scaling** — ``α_l = α · sep_l / max sep`` when ``adaptive`` (else ``α``).
5. **Edit** — ``W_l ← W_l − α_l P_λ W_l`` for the attention-out and MLP-out writers of each
   selected layer (:func:`~safetyscope.interventions.weights.orthogonalize_layers`).

With ``k = 1``, ``λ = 0``, ``adaptive=False`` and one shared direction for every layer this is
single-direction orthogonalization (``standard``) without the embedding edit; the embedding is
edited only when ``embed=True`` (with the first selected layer's projector). Defaults (``k = 2``,
``λ = 0.03``, no adaptive scaling) are the setting that removes refusal on the organism without
breaking it; the exact projector with ``k ≥ 2`` makes it incoherent (docs/abliteration.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations import Site, collect
from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.weights import orthogonalize_layers
from safetyscope.model.loading import LoadedModel


@dataclass
class LayerPlan:
    """One layer's Gabliteration edit: directions, their strengths, separability and scale."""

    layer: int
    directions: Tensor  # [k, d] orthonormal rows (right singular vectors of the paired differences)
    singular_values: list[float]
    strengths: list[float]  # eigenvalues w_i of the ridge-regularised projector
    separability: float
    alpha: float  # 0 for layers not selected
    explained: float  # share of ‖D‖_F² carried by the k directions

    @property
    def selected(self) -> bool:
        """Whether this layer is edited."""
        return self.alpha > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON summary (the directions as a shape only)."""
        d = asdict(self)
        d["directions"] = list(self.directions.shape)
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()} | {
            "singular_values": [None if x != x else x for x in self.singular_values]
        }


@dataclass
class GabliterationPlan:
    """Per-layer directions and strengths for :func:`gabliterate`, with its options and provenance."""

    layers: list[LayerPlan]
    k: int
    ridge: float
    alpha: float
    layer_threshold: float
    adaptive: bool
    embed: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> list[int]:
        """Layers that are edited."""
        return [p.layer for p in self.layers if p.selected]

    def to_dict(self) -> dict[str, Any]:
        """JSON summary."""
        return {
            "method": "gabliteration",
            "k": self.k,
            "ridge": self.ridge,
            "alpha": self.alpha,
            "layer_threshold": self.layer_threshold,
            "adaptive": self.adaptive,
            "embed": self.embed,
            "selected_layers": self.selected,
            "layers": [p.to_dict() for p in self.layers],
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2)


def paired_difference_directions(harmful: Tensor, harmless: Tensor, k: int) -> tuple[Tensor, Tensor, float]:
    """Top-``k`` right singular vectors of ``harmful − harmless`` (rows paired), their singular
    values and their share of the squared Frobenius norm; each vector oriented so harmful projects higher."""
    if harmful.shape != harmless.shape or harmful.ndim != 2:
        raise SafetyscopeError(
            f"Paired activations must have one shape [n, d]; got {tuple(harmful.shape)} "
            f"and {tuple(harmless.shape)}."
        )
    diff = harmful.double() - harmless.double()
    if k < 1 or k > min(diff.shape):
        raise SafetyscopeError(f"k={k} directions need 1 <= k <= min(n, d) = {min(diff.shape)}.")
    _, s, vh = torch.linalg.svd(diff, full_matrices=False)
    v = vh[:k]
    sign = torch.sign(diff.mean(0) @ v.T)
    v = v * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
    total = float((s**2).sum())
    return v, s[:k], float((s[:k] ** 2).sum()) / total if total > 0 else 0.0


def ridge_strengths(singular_values: Tensor, ridge: float) -> Tensor:
    """Eigenvalues ``w_i = s_i² / (s_i² + λ)`` of ``R (RᵀR + λI)⁻¹ Rᵀ``, ``R = V diag(σ/σ_1)``."""
    if ridge < 0:
        raise SafetyscopeError(f"ridge must be >= 0, got {ridge}.")
    s = singular_values.double() / singular_values.double()[0].clamp_min(1e-30)
    return s**2 / (s**2 + ridge)


def separability(harmful: Tensor, harmless: Tensor) -> float:
    """``‖μ_H − μ_B‖ / (σ_H + σ_B)``, ``σ`` the root mean squared distance of a class to its mean."""
    h, b = harmful.double(), harmless.double()
    mh, mb = h.mean(0), b.mean(0)
    spread = ((h - mh).pow(2).sum(-1).mean().sqrt() + (b - mb).pow(2).sum(-1).mean().sqrt()).clamp_min(1e-30)
    return float((mh - mb).norm() / spread)


def plan_from_activations(
    harmful: dict[int, Tensor],
    harmless: dict[int, Tensor],
    *,
    k: int = 2,
    ridge: float = 0.03,
    alpha: float = 1.0,
    layer_threshold: float = 0.0,
    adaptive: bool = False,
    embed: bool = False,
) -> GabliterationPlan:
    """The plan from paired per-layer activations ``{layer: [n, d]}`` (see the module docstring)."""
    if not harmful or set(harmful) != set(harmless):
        raise SafetyscopeError("Need harmful and harmless activations for the same, non-empty set of layers.")
    if not 0 <= layer_threshold <= 1 or not 0 < alpha <= 1:
        raise SafetyscopeError(
            f"Need 0 <= layer_threshold <= 1 and 0 < alpha <= 1, got {layer_threshold}, {alpha}."
        )
    seps = {layer: separability(harmful[layer], harmless[layer]) for layer in harmful}
    top = max(seps.values())
    plans = []
    for layer in sorted(harmful):
        v, s, share = paired_difference_directions(harmful[layer], harmless[layer], k)
        keep = top > 0 and seps[layer] >= layer_threshold * top
        a = (alpha * seps[layer] / top if adaptive else alpha) if keep else 0.0
        plans.append(
            LayerPlan(layer, v.float(), s.tolist(), ridge_strengths(s, ridge).tolist(), seps[layer], a, share)
        )
    return GabliterationPlan(plans, k, ridge, alpha, layer_threshold, adaptive, embed)


def pair_rows(harmful: Sequence[str], harmless: Sequence[str]) -> tuple[list[str], list[str]]:
    """The first ``min(len)`` prompts of each set (the paired-difference matrix pairs rows by index)."""
    n = min(len(harmful), len(harmless))
    if n < 2:
        raise SafetyscopeError(
            f"Gabliteration needs at least 2 harmful and 2 harmless prompts, got "
            f"{len(harmful)} and {len(harmless)}."
        )
    return list(harmful[:n]), list(harmless[:n])


def plan_gabliteration(
    lm: LoadedModel,
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    positions: str = "eoi:-1",
    **options: Any,
) -> GabliterationPlan:
    """Collect paired ``resid_post`` activations of every layer and build the plan (:func:`plan_from_activations`)."""
    h_prompts, b_prompts = pair_rows(harmful, harmless)
    chosen = list(range(lm.n_layers)) if layers is None else sorted(set(layers))
    sites = [Site(layer, "resid_post") for layer in chosen]
    acts_h = collect(lm, h_prompts, sites, positions, "none", progress=False)
    acts_b = collect(lm, b_prompts, sites, positions, "none", progress=False)
    plan = plan_from_activations(
        {s.layer: acts_h.per_prompt(s)[:, -1] for s in sites},
        {s.layer: acts_b.per_prompt(s)[:, -1] for s in sites},
        **options,
    )
    plan.provenance = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "site_point": "resid_post",
        "positions": positions,
        "n_pairs": len(h_prompts),
        "safetyscope_version": __version__,
    }
    return plan


def gabliterate(lm: LoadedModel, plan: GabliterationPlan) -> LoadedModel:
    """A copy of ``lm`` with the plan's edit applied (the input model is never modified)."""
    subspaces = {p.layer: (p.directions, torch.tensor(p.strengths)) for p in plan.layers if p.selected}
    if not subspaces:
        raise SafetyscopeError("The Gabliteration plan selects no layer; lower layer_threshold.")
    first = next(p for p in plan.layers if p.selected)
    edited = orthogonalize_layers(
        lm,
        subspaces,
        layer_weights={p.layer: p.alpha for p in plan.layers if p.selected},
        embed=(first.directions, torch.tensor(first.strengths)) if plan.embed else None,
        embed_weight=first.alpha,
    )
    edited.spec = f"{lm.spec} [gabliteration k={plan.k} ridge={plan.ridge}]"
    return edited


def plan_shared(
    lm: LoadedModel, directions: Tensor, *, ridge: float = 0.0, embed: bool = True
) -> GabliterationPlan:
    """A plan that uses one given subspace (``[k, d]`` or ``[d]``) at every layer and the embedding.

    The rows are orthonormalised and, as unit directions, take the strength ``1 / (1 + λ)`` of the
    ridge projector; no separability is known, so every layer has ``α = 1``. With ``ridge = 0``
    this is :func:`~safetyscope.interventions.weights.orthogonalize` (``standard``).
    """
    from safetyscope.interventions.hooks import orthonormal

    if ridge < 0:
        raise SafetyscopeError(f"ridge must be >= 0, got {ridge}.")
    q = orthonormal(directions.reshape(-1, directions.shape[-1]))
    if q.shape[-1] != lm.d_model:
        raise SafetyscopeError(f"Directions have dimension {q.shape[-1]}, model d_model is {lm.d_model}.")
    w = [1.0 / (1.0 + ridge)] * q.shape[0]
    layers = [
        LayerPlan(layer, q, [float("nan")] * q.shape[0], w, float("nan"), 1.0, float("nan"))
        for layer in range(lm.n_layers)
    ]
    return GabliterationPlan(
        layers,
        q.shape[0],
        ridge,
        1.0,
        0.0,
        False,
        embed,
        {
            "model": lm.spec,
            "model_fingerprint": lm.fingerprint(),
            "directions": "given",
            "safetyscope_version": __version__,
        },
    )
