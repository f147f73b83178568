"""The geometry of a contrast: SVD spectrum of paired differences, cosines, Mahalanobis separation.

For pairs ``(h_i, s_i)`` (harmful, harmless; rows paired by index) the paired-difference matrix
``D`` has rows ``h_i - s_i``. Its singular values ``σ_1 ≥ σ_2 ≥ ...`` give the share of the
differences' energy along each direction, ``σ_k² / Σ_j σ_j²``; the LAT paper (arXiv
2504.18872) reads how concentrated refusal is from ``top1`` and ``top2 = (σ_1² + σ_2²) / Σσ²``
(about 75% after latent adversarial training). ``D`` is used uncentred, as in the paper, unless
``centred=True`` (then the mean difference is removed first and the spectrum describes only
the spread of the differences around it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.directions.checks import DirectionError, check_pair
from safetyscope.directions.covariance import Shrinkage, pooled_within, shrunk_covariance
from safetyscope.directions.direction import Direction, DirectionSet
from safetyscope.directions.extract import METHODS, extract
from safetyscope.threads import threads_for


@dataclass
class LayerSpectrum:
    """The paired-difference spectrum at one layer.

    Attributes:
        layer: layer number (``None`` for a single ``[n, d]`` input).
        singular_values: all ``min(n, d)`` singular values of ``D``, descending.
        explained_variance: ``σ_k² / Σσ²`` for each (all zero when ``D`` is zero).
        top1: the first share (``None`` when ``D`` is zero).
        top2: the first two shares summed.
        cumulative_top_k: the first ``k`` shares summed (``k`` is the report's ``top_k``).
        mean_diff_norm: ``‖mean(D)‖``.
        cos_mean_diff_top1: ``|cos|`` between the mean difference and the first right singular vector.
        mahalanobis: ``sqrt(Δᵀ Σ̂⁻¹ Δ)`` with the shrinkage within-class covariance, if computed.
    """

    layer: int | None
    singular_values: list[float]
    explained_variance: list[float]
    top1: float | None
    top2: float | None
    cumulative_top_k: float | None
    mean_diff_norm: float
    cos_mean_diff_top1: float | None
    mahalanobis: float | None = None


def paired_spectrum(
    harmful: Float[Tensor, "n d"], harmless: Float[Tensor, "n d"], *, centred: bool = False,
    top_k: int = 5, layer: int | None = None,
) -> LayerSpectrum:
    """SVD spectrum of the paired differences ``harmful[i] - harmless[i]`` at one layer."""
    a, b = check_pair(harmful, harmless, paired=True)
    diffs = a - b
    mean = diffs.mean(0)
    if centred:
        diffs = diffs - mean
    with threads_for(diffs.numel()):
        _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    total = float((s**2).sum())
    scale = float(torch.cat([a, b]).norm(dim=1).mean())
    if total <= (1e-12 * max(scale, 1e-300)) ** 2:
        return LayerSpectrum(layer, s.tolist(), [0.0] * len(s), None, None, None, float(mean.norm()), None)
    ev = (s**2 / total).tolist()
    mnorm = float(mean.norm())
    cos = abs(float(vh[0] @ mean)) / mnorm if mnorm > 0 else None
    return LayerSpectrum(layer, s.tolist(), ev, ev[0], sum(ev[:2]), sum(ev[:top_k]), mnorm, cos)


def mahalanobis_separation(
    harmful: Float[Tensor, "n d"], harmless: Float[Tensor, "m d"], shrinkage: Shrinkage = "ledoit_wolf"
) -> float:
    """``sqrt((μ_h - μ_s)ᵀ Σ̂⁻¹ (μ_h - μ_s))`` with ``Σ̂`` the shrinkage within-class covariance.

    The distance between the class means in units of the (pooled) within-class spread: the
    Euclidean distance of the means after whitening. ``2 Φ(-D/2)`` is the error rate of the
    best linear classifier when both classes are Gaussian with that covariance.
    """
    a, b = check_pair(harmful, harmless)
    if a.ndim != 2:
        raise DirectionError("mahalanobis_separation takes one layer: [n, d] and [m, d].")
    delta = a.mean(0) - b.mean(0)
    with threads_for(max(a.numel() + b.numel(), a.shape[1] ** 2)):
        cov = shrunk_covariance(pooled_within(a, b), shrinkage)
        return math.sqrt(max(0.0, float(delta @ cov.solve(delta))))


@dataclass
class CosineMatrix:
    """Pairwise cosine similarities between labelled vectors."""

    labels: list[str]
    matrix: list[list[float]]

    def get(self, a: str, b: str) -> float:
        """The cosine between the vectors labelled ``a`` and ``b``."""
        return self.matrix[self.labels.index(a)][self.labels.index(b)]


def cosine_matrix(vectors: Mapping[str, Tensor] | Sequence[Direction]) -> CosineMatrix:
    """Cosines between vectors given by label, or between directions (labelled ``method@layer``)."""
    if isinstance(vectors, Mapping):
        labels, vecs = list(vectors), [v.to(torch.float64) for v in vectors.values()]
    else:
        labels = [f"{d.method}@{d.layer}" for d in vectors]
        vecs = [d.vector.to(torch.float64) for d in vectors]
    m = torch.stack(vecs)
    m = m / m.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return CosineMatrix(labels, (m @ m.T).clamp(-1, 1).tolist())


def method_cosines(
    harmful: Float[Tensor, "n d"], harmless: Float[Tensor, "m d"], methods: Sequence[str] | None = None,
    **opts: Any,
) -> CosineMatrix:
    """Cosines between the directions several methods extract from the same one-layer data.

    ``opts`` maps a method name to its options, e.g. ``probe={"l2": 0.1}``. Paired methods are
    skipped when the row counts differ.
    """
    a, b = check_pair(harmful, harmless)
    names = list(methods) if methods is not None else [
        m for m in METHODS if not (METHODS[m].paired and a.shape[0] != b.shape[0])]
    vectors = {}
    for m in names:
        direction = extract(a, b, m, **opts.get(m, {}))
        assert isinstance(direction, Direction)  # one-layer input gives one direction
        vectors[m] = direction.vector
    return cosine_matrix(vectors)


def layer_cosines(directions: DirectionSet) -> CosineMatrix:
    """Cosines between one method's directions at every pair of layers."""
    return cosine_matrix({str(d.layer): d.vector for d in directions})


@dataclass
class GeometryReport:
    """Per-layer spectra plus optional cosine matrices, serialisable to JSON.

    Attributes:
        n: number of pairs; d: residual width; centred: whether ``D`` was centred.
        top_k: the ``k`` of each layer's ``cumulative_top_k``.
        layers: one :class:`LayerSpectrum` per layer.
        method_cosines: per layer (as a string key), cosines between methods.
        layer_cosines: per method, cosines across layers.
        provenance: inputs and version.
    """

    n: int
    d: int
    centred: bool
    top_k: int
    layers: list[LayerSpectrum]
    method_cosines: dict[str, CosineMatrix] = field(default_factory=dict)
    layer_cosines: dict[str, CosineMatrix] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def at(self, layer: int | None) -> LayerSpectrum:
        """The spectrum of ``layer``."""
        for spec in self.layers:
            if spec.layer == layer:
                return spec
        raise KeyError(f"No layer {layer} in report; layers: {[s.layer for s in self.layers]}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the ``safetyscope geometry --json`` schema)."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The report as strict JSON (no NaN)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeometryReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            n=data["n"], d=data["d"], centred=data["centred"], top_k=data["top_k"],
            layers=[LayerSpectrum(**x) for x in data["layers"]],
            method_cosines={k: CosineMatrix(**v) for k, v in data.get("method_cosines", {}).items()},
            layer_cosines={k: CosineMatrix(**v) for k, v in data.get("layer_cosines", {}).items()},
            provenance=data.get("provenance", {}),
        )

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (a failure leaves an existing file as it was)."""
        from safetyscope.outputs import atomic_file

        path = Path(path)
        text = self.to_json() + "\n"  # serialise first: a JSON error must not touch the file
        with atomic_file(path) as tmp:
            tmp.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GeometryReport:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def geometry(
    harmful: Float[Tensor, "n *layers d"], harmless: Float[Tensor, "n *layers d"], *,
    centred: bool = False, top_k: int = 5, layers: Sequence[int] | None = None,
    mahalanobis: bool = False, shrinkage: Shrinkage = "ledoit_wolf",
    methods: Sequence[str] | None = None, provenance: dict[str, Any] | None = None,
) -> GeometryReport:
    """Spectrum (and optionally Mahalanobis separation and method cosines) at every layer.

    Args:
        harmful, harmless: paired ``[n, d]`` or ``[n, layers, d]`` activations.
        centred: centre the paired differences before the SVD.
        top_k: ``k`` for the cumulative share reported per layer.
        layers: labels of the layer axis (default ``0..L-1``).
        mahalanobis: also compute the Mahalanobis separation per layer (a ``d × d`` solve each).
        shrinkage: covariance shrinkage for Mahalanobis and whitened directions.
        methods: if given, add per-layer cosine matrices between these extraction methods, and
            per-method cosine matrices across layers.
        provenance: upstream provenance to record.
    """
    a, b = check_pair(harmful, harmless, paired=True)
    a3, b3 = (a[:, None], b[:, None]) if a.ndim == 2 else (a, b)
    labels: list[int | None] = ([None] if a.ndim == 2 else list(range(a3.shape[1]))) if layers is None else list(layers)
    if len(labels) != a3.shape[1]:
        raise DirectionError(f"{len(labels)} layer labels for {a3.shape[1]} layers.")
    report = GeometryReport(a.shape[0], a.shape[-1], centred, top_k, [], provenance=dict(
        provenance or {}, shrinkage=shrinkage, safetyscope_version=__version__))
    for i, layer in enumerate(labels):
        spec = paired_spectrum(a3[:, i], b3[:, i], centred=centred, top_k=top_k, layer=layer)
        if mahalanobis:
            spec.mahalanobis = mahalanobis_separation(a3[:, i], b3[:, i], shrinkage)
        report.layers.append(spec)
        if methods:
            report.method_cosines[str(layer)] = method_cosines(
                a3[:, i], b3[:, i], methods, whitened={"shrinkage": shrinkage})
    if methods and a.ndim == 3:
        for m in methods:
            opts: dict[str, Any] = {"shrinkage": shrinkage} if m == "whitened" else {}
            dset = extract(a, b, m, layers=[int(x) for x in labels if x is not None], **opts)
            assert isinstance(dset, DirectionSet)
            report.layer_cosines[m] = layer_cosines(dset)
    return report
