"""Extract contrast directions (harmful − harmless) per layer, by a registry of methods.

``extract(harmful, harmless, method, **opts)`` takes ``[n, d]`` activations (one layer; returns
a :class:`Direction`) or ``[n, layers, d]`` (returns a :class:`DirectionSet`), or two
:class:`~safetyscope.activations.ActivationResult` objects. All maths is float64 on the CPU.
Every returned vector is a unit vector oriented so that harmful rows project higher on average
(``mean_gap >= 0``). Methods (``μ_h``, ``μ_s``: class means; ``Δ = μ_h - μ_s``):

``diff_means``   ``Δ`` (Arditi et al. 2024; RepE reading vector).
``pca``          first principal component of the pooled, mean-centred rows of both classes
                 (RepE's interleaved pairs), or with ``mode="diffs"`` of the sign-symmetrised
                 paired differences ``±(h_i - s_i)`` (= top right singular vector of ``D``).
``whitened``     ``Σ̂⁻¹ Δ``: difference of means in PCA-whitened coordinates pulled back to a
                 read-out direction (the Fisher/LDA direction), ``Σ̂`` the within-class
                 covariance shrunk toward ``μI`` (Ledoit-Wolf by default), so ``n < d`` works.
``probe``        weights of an L2-regularised logistic regression (harmful = 1).
``projected``    ``Δ`` with its component along the harmless mean removed (projected abliteration).
``subspace``     top-``k`` right singular vectors of the paired-difference matrix ``D``
                 (uncentred, as in the LAT paper), as an orthonormal ``basis`` ``[k, d]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.result import ActivationResult
from safetyscope.directions.checks import DirectionError, check_pair, unit
from safetyscope.directions.contrast import stacked
from safetyscope.directions.covariance import pooled_within, shrunk_covariance
from safetyscope.directions.direction import Direction, DirectionSet
from safetyscope.directions.logistic import fit_logistic
from safetyscope.threads import threads_for


@dataclass
class RawDirection:
    """What a method returns before normalisation and orientation."""

    vector: Float[Tensor, " d"]
    basis: Float[Tensor, "k d"] | None = None
    info: dict[str, Any] = field(default_factory=dict)


MethodFn = Callable[..., RawDirection]


@dataclass(frozen=True)
class Method:
    """A registered extraction method: the function and whether it pairs rows by index."""

    name: str
    fn: MethodFn
    paired: bool
    summary: str


#: The extraction methods by name; extend with :func:`register_method`.
METHODS: dict[str, Method] = {}


def register_method(name: str, *, paired: bool = False, summary: str = "") -> Callable[[MethodFn], MethodFn]:
    """Decorator registering ``fn(harmful [n, d], harmless [m, d], **opts) -> RawDirection``."""

    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, fn, paired, summary or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return wrap


@register_method("diff_means")
def _diff_means(a: Tensor, b: Tensor) -> RawDirection:
    """Difference of class means ``μ_h - μ_s``; raw_norm is ``‖Δ‖``."""
    return RawDirection(a.mean(0) - b.mean(0))


@register_method("pca")
def _pca(a: Tensor, b: Tensor, mode: str = "interleaved") -> RawDirection:
    """First principal component; raw_norm is the standard deviation of the rows along it."""
    if mode == "interleaved":
        x = torch.cat([a, b])
        x = x - x.mean(0)
    elif mode == "diffs":
        if a.shape[0] != b.shape[0]:
            raise DirectionError(f"pca mode='diffs' pairs rows: {a.shape[0]} harmful vs {b.shape[0]} harmless.")
        x = a - b  # ±(a - b) has zero mean, so its PCA is the SVD of the uncentred differences
    else:
        raise DirectionError(f"Unknown pca mode {mode!r}; use 'interleaved' or 'diffs'.")
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    sd = float(s[0]) / x.shape[0] ** 0.5
    explained = float(s[0] ** 2 / (s**2).sum()) if float(s[0]) > 0 else 0.0
    return RawDirection(vh[0] * sd, info={"mode": mode, "explained_variance": explained})


@register_method("whitened")
def _whitened(a: Tensor, b: Tensor, shrinkage: float | str = "ledoit_wolf") -> RawDirection:
    """``Σ̂⁻¹ Δ`` with a shrinkage within-class covariance; raw_norm is ``‖Σ̂⁻¹ Δ‖``."""
    cov = shrunk_covariance(pooled_within(a, b), shrinkage)
    delta = a.mean(0) - b.mean(0)
    w = cov.solve(delta)
    return RawDirection(w, info={"shrinkage": cov.shrinkage, "mahalanobis": float(delta @ w) ** 0.5})


@register_method("probe")
def _probe(a: Tensor, b: Tensor, l2: float = 1e-2, max_iter: int = 200) -> RawDirection:
    """Logistic-regression weights (harmful = 1); raw_norm is ``‖w‖``."""
    x = torch.cat([a, b])
    y = torch.cat([torch.ones(a.shape[0]), torch.zeros(b.shape[0])])
    fit = fit_logistic(x, y, l2=l2, max_iter=max_iter)
    return RawDirection(fit.weight, info={"train_accuracy": fit.train_accuracy, "n_iter": fit.n_iter,
                                          "loss": fit.loss, "bias": fit.bias})


@register_method("projected")
def _projected(a: Tensor, b: Tensor) -> RawDirection:
    """``Δ`` minus its projection on the harmless mean; raw_norm is the norm of what remains."""
    delta, mu_s = a.mean(0), b.mean(0)
    hat, _ = unit(mu_s, "harmless mean", scale=float(b.norm(dim=1).mean()))
    return RawDirection(delta - (delta @ hat) * hat, info={"removed": float(delta @ hat)})


@register_method("subspace", paired=True)
def _subspace(a: Tensor, b: Tensor, k: int = 2, centred: bool = False) -> RawDirection:
    """Top-k right singular vectors of the paired differences; raw_norm is ``σ₁ / √n``."""
    diffs = a - b
    if centred:
        diffs = diffs - diffs.mean(0)
    if not 1 <= k <= min(diffs.shape):
        raise DirectionError(f"subspace k={k} must lie in [1, min(n, d)] = [1, {min(diffs.shape)}].")
    _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    delta = a.mean(0) - b.mean(0)
    basis = vh[:k] * torch.where(vh[:k] @ delta < 0, -1.0, 1.0).to(vh.dtype)[:, None]
    total = float((s**2).sum())
    info = {"k": k, "centred": centred, "singular_values": s[:k].tolist(),
            "explained_variance": (s[:k] ** 2 / total).tolist() if total > 0 else [0.0] * k}
    return RawDirection(basis[0] * float(s[0]) / diffs.shape[0] ** 0.5, basis=basis, info=info)


def _one(a: Tensor, b: Tensor, m: Method, layer: int | None, opts: dict[str, Any],
         provenance: dict[str, Any], point: str | None = None) -> Direction:
    with threads_for(max(a.numel(), b.numel(), a.shape[-1] ** 2)):
        raw = m.fn(a, b, **opts)
    scale = float(torch.cat([a, b]).norm(dim=1).mean())
    vec, norm = unit(raw.vector, f"{m.name} vector{'' if layer is None else f' at layer {layer}'}", scale=scale)
    gap = float((a.mean(0) - b.mean(0)) @ vec)
    if gap < 0:
        vec, gap = -vec, -gap
    basis = raw.basis
    if basis is not None:
        basis = torch.cat([vec[None], basis[1:]])
    prov = dict(provenance, fit=raw.info) if raw.info else dict(provenance)
    return Direction(m.name, layer, vec, norm, gap, basis, prov, point=point if layer is not None else None,
                     model_fingerprint=_fingerprint_of(provenance))


def _fingerprint_of(prov: dict[str, Any]) -> str | None:
    for source in (prov, prov.get("harmful") or {}):
        if isinstance(source, dict) and source.get("model_fingerprint"):
            return str(source["model_fingerprint"])
    return None


def extract(
    harmful: Float[Tensor, "n *layers d"] | ActivationResult,
    harmless: Float[Tensor, "m *layers d"] | ActivationResult,
    method: str = "diff_means",
    *,
    layers: Sequence[int] | int | None = None,
    provenance: dict[str, Any] | None = None,
    point: str | None = None,
    **opts: Any,
) -> Direction | DirectionSet:
    """Extract a unit direction per layer with ``method`` (see :data:`METHODS`).

    Args:
        harmful: ``[n, d]``, ``[n, layers, d]`` or an :class:`ActivationResult` (its per-prompt
            rows, token-averaged, at each collected site).
        harmless: the same for the contrast class; paired methods need equal ``n``.
        method: a key of :data:`METHODS`.
        layers: layer numbers labelling the middle axis of 3-D input (default ``0..L-1``, or the
            sites' layers for an :class:`ActivationResult`); for 2-D input, one number (or None).
        provenance: upstream provenance (model fingerprint, prompt hashes) to record; its
            ``model_fingerprint`` becomes each direction's.
        point: the stream point the tensors were read at (with the layer, each direction's
            :attr:`~Direction.site`); taken from the sites of an :class:`ActivationResult`.
        **opts: method options (``mode=`` for pca, ``shrinkage=`` for whitened, ``l2=`` for
            probe, ``k=`` / ``centred=`` for subspace).

    Returns:
        A :class:`Direction` for 2-D input, else a :class:`DirectionSet` (one per layer).

    Raises:
        DirectionError: unknown method or option, too few rows, mismatched shapes, NaN/inf,
            or a zero direction (indistinguishable classes at some layer).
    """
    if method not in METHODS:
        raise DirectionError(f"Unknown direction method {method!r}; choose one of {sorted(METHODS)}.")
    m = METHODS[method]
    prov: dict[str, Any] = dict(provenance or {})
    if isinstance(harmful, ActivationResult) or isinstance(harmless, ActivationResult):
        if not (isinstance(harmful, ActivationResult) and isinstance(harmless, ActivationResult)):
            raise DirectionError("Pass two ActivationResults or two tensors, not one of each.")
        harmful_sites = list(harmful.sites)
        harmful, site_layers, prov_h = stacked(harmful)
        harmless, site_layers_b, prov_s = stacked(harmless)
        if site_layers != site_layers_b:
            raise DirectionError(f"Harmful and harmless were collected at different layers: {site_layers} vs {site_layers_b}.")
        layers = layers if layers is not None else site_layers
        prov |= {"harmful": prov_h, "harmless": prov_s}
        points = {s.point for s in harmful_sites}
        point = point if point is not None else (points.pop() if len(points) == 1 else None)
    a, b = check_pair(harmful, harmless, paired=m.paired)
    try:
        inspect.signature(m.fn).bind(a, b, **opts)
    except TypeError as exc:
        raise DirectionError(f"Bad options {sorted(opts)} for method {method!r}: {exc}.") from exc
    prov |= {"method": method, "options": opts, "n_harmful": a.shape[0], "n_harmless": b.shape[0],
             "d": a.shape[-1], "input_dtype": str(harmful.dtype).removeprefix("torch."),
             "safetyscope_version": __version__}
    if a.ndim == 2:
        layer = None if layers is None else (int(layers[0]) if isinstance(layers, Sequence) else int(layers))
        return _one(a, b, m, layer, opts, prov, point)
    if isinstance(layers, int):
        raise DirectionError("3-D input needs one layer label per layer (a list), not a single int.")
    labels = list(range(a.shape[1])) if layers is None else [int(x) for x in layers]
    if len(labels) != a.shape[1]:
        raise DirectionError(f"{len(labels)} layer labels for {a.shape[1]} layers.")
    return DirectionSet(method, [_one(a[:, i], b[:, i], m, labels[i], opts, prov, point) for i in range(a.shape[1])],
                        prov)
