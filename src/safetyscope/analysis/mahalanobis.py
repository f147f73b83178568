"""Mahalanobis distance to the harmless distribution, per layer, and the saved monitor (compendium 8.4).

At one layer the harmless activations define a Gaussian: mean ``μ`` and the shrinkage covariance
of :mod:`safetyscope.directions.covariance`, ``Σ̂ = (1 - α) S + α m I`` (``m = tr(S)/d``, ``α``
by Ledoit-Wolf). The out-of-distribution score of an input is

    d_M(x) = √((x - μ)ᵀ Σ̂⁻¹ (x - μ))

Large = unlike the harmless prompts. With ``n`` rows in ``d ≫ n`` dimensions ``Σ̂`` is never
formed: from the SVD of the centred rows, ``S = V diag(σ²/n) Vᵀ`` (rank ``k ≤ n``), so

    d_M² = Σᵢ (vᵢᵀz)² / ((1 - α) σᵢ²/n + α m)  +  (‖z‖² - Σᵢ (vᵢᵀz)²) / (α m),    z = x - μ

and a layer costs ``k × d`` numbers, not ``d²``. With ``normalize`` every row is first scaled
to unit L2 norm (Mahalanobis++, Mueller & Hein 2025).

:class:`MahalanobisMonitor` holds one such Gaussian per layer, the calibration that puts the
layers on one scale (z-scores of harmless held-out distances), the ensemble's layers and an
alarm threshold; it is saved as safetensors (tensors) plus a JSON sidecar (settings and
provenance). :mod:`safetyscope.analysis.monitor` fits and evaluates it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor

from safetyscope.directions.checks import DirectionError
from safetyscope.directions.covariance import Shrinkage, ledoit_wolf_shrinkage
from safetyscope.errors import SafetyscopeError
from safetyscope.outputs import atomic_file
from safetyscope.threads import threads_for

FORMAT = "safetyscope-mahalanobis-monitor"


def l2_normalise(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (Mahalanobis++)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass
class LayerGaussian:
    """The harmless distribution at one layer: mean and shrunk covariance in eigen form."""

    mean: Float[Tensor, " d"]
    basis: Float[Tensor, "k d"]  # eigenvectors of S with non-zero eigenvalue
    eigvals: Float[Tensor, " k"]  # (1 - α) σᵢ²/n + α m
    floor: float  # α m: the eigenvalue off the span of the rows
    shrinkage: float

    def distance(self, x: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """Mahalanobis distance of each row (float64)."""
        z = x.detach().to("cpu", torch.float64) - self.mean
        proj = z @ self.basis.T
        d2 = (proj.pow(2) / self.eigvals).sum(-1)
        if self.floor > 0:
            d2 = d2 + (z.pow(2).sum(-1) - proj.pow(2).sum(-1)).clamp_min(0) / self.floor
        return d2.sqrt()


def fit_gaussian(x: Float[Tensor, "n d"], shrinkage: Shrinkage = "ledoit_wolf") -> LayerGaussian:
    """Fit :class:`LayerGaussian` to rows ``x`` (the formula in the module docstring)."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise DirectionError(f"A Gaussian needs [n >= 2, d] rows, got {tuple(x.shape)}.")
    data = x.detach().to("cpu", torch.float64)
    n, d = data.shape
    mean = data.mean(0)
    z = data - mean
    with threads_for(z.numel()):
        alpha = ledoit_wolf_shrinkage(z) if shrinkage == "ledoit_wolf" else float(shrinkage)
        if isinstance(shrinkage, str) and shrinkage != "ledoit_wolf":
            raise DirectionError(f"Unknown shrinkage {shrinkage!r}; use 'ledoit_wolf' or a number in [0, 1].")
        if not 0.0 <= alpha <= 1.0:
            raise DirectionError(f"shrinkage must lie in [0, 1], got {alpha}.")
        _, s, vh = torch.linalg.svd(z, full_matrices=False)
    m = float(z.pow(2).sum()) / (n * d)
    if m <= 0:
        raise DirectionError("All rows are identical: the covariance is zero.")
    keep = s > s.max() * 1e-10
    lam = s[keep].pow(2) / n
    floor = alpha * m
    if floor == 0 and int(keep.sum()) < d:
        raise DirectionError(
            f"The covariance of {n} rows in {d} dimensions is singular without shrinkage; "
            "use shrinkage='ledoit_wolf' or a value in (0, 1]."
        )
    return LayerGaussian(mean, vh[keep], (1 - alpha) * lam + floor, floor, alpha)


@dataclass
class MahalanobisMonitor:
    """Per-layer Mahalanobis detectors and their multi-layer ensemble (module docstring).

    ``score`` is the ensemble: the mean over ``ensemble`` layers of each layer's distance as a
    z-score of the harmless calibration distances (``calib_mean``, ``calib_std``); an input is
    flagged when it exceeds ``threshold``.
    """

    layers: list[int]
    gaussians: list[LayerGaussian]
    calib_mean: list[float]
    calib_std: list[float]
    ensemble: list[int]
    threshold: float
    normalize: bool = False
    site_point: str = "resid_pre"
    positions: str = "eoi:-1"
    provenance: dict[str, Any] = field(default_factory=dict)

    def _idx(self, layer: int) -> int:
        if layer not in self.layers:
            raise SafetyscopeError(f"The monitor has no layer {layer}; its layers: {self.layers}.")
        return self.layers.index(layer)

    def layer_distances(self, x: Float[Tensor, "n layers d"]) -> Float[Tensor, "n layers"]:
        """Distances at every monitored layer; ``x`` holds the rows of :attr:`layers` in order."""
        if x.ndim != 3 or x.shape[1] != len(self.layers):
            raise SafetyscopeError(f"Expected activations [n, {len(self.layers)}, d], got {tuple(x.shape)}.")
        rows = l2_normalise(x.double()) if self.normalize else x
        return torch.stack([g.distance(rows[:, i]) for i, g in enumerate(self.gaussians)], 1)

    def zscores(self, distances: Float[Tensor, "n layers"]) -> Float[Tensor, "n layers"]:
        """Distances on the harmless calibration scale."""
        mu = torch.tensor(self.calib_mean, dtype=torch.float64)
        sd = torch.tensor(self.calib_std, dtype=torch.float64).clamp_min(1e-12)
        return (distances.double() - mu) / sd

    def ensemble_score(self, distances: Float[Tensor, "n layers"], layers: list[int] | None = None) -> Tensor:
        """Mean z-score over ``layers`` (default: the monitor's ensemble)."""
        idx = [self._idx(la) for la in (layers or self.ensemble)]
        return self.zscores(distances)[:, idx].mean(1)

    def score(self, x: Float[Tensor, "n layers d"]) -> Float[Tensor, " n"]:
        """The ensemble score of each input (higher = further from harmless)."""
        return self.ensemble_score(self.layer_distances(x))

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``path`` (safetensors) and ``path.with_suffix('.json')`` (settings, provenance)."""
        path = Path(path)
        tensors: dict[str, Tensor] = {}
        for layer, g in zip(self.layers, self.gaussians, strict=True):
            tensors[f"layer{layer}.mean"] = g.mean.contiguous()
            tensors[f"layer{layer}.basis"] = g.basis.contiguous()
            tensors[f"layer{layer}.eigvals"] = g.eigvals.contiguous()
        meta = {
            "format": FORMAT,
            "layers": self.layers,
            "calib_mean": self.calib_mean,
            "calib_std": self.calib_std,
            "ensemble": self.ensemble,
            "threshold": self.threshold,
            "normalize": self.normalize,
            "site_point": self.site_point,
            "positions": self.positions,
            "floor": [g.floor for g in self.gaussians],
            "shrinkage": [g.shrinkage for g in self.gaussians],
            "provenance": self.provenance,
        }
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT})
        side = path.with_suffix(".json")
        with atomic_file(side) as tmp:
            tmp.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")
        return path, side

    @classmethod
    def load(cls, path: str | Path) -> MahalanobisMonitor:
        """Read a monitor written by :meth:`save`."""
        path = Path(path)
        side = path.with_suffix(".json")
        if not path.is_file() or not side.is_file():
            raise SafetyscopeError(
                f"A monitor is {path} plus {side}; one of them is missing "
                "(write one with `safetyscope monitor fit`)."
            )
        meta = json.loads(side.read_text())
        if meta.get("format") != FORMAT:
            raise SafetyscopeError(f"{side} is not a safetyscope Mahalanobis monitor.")
        t = load_file(str(path))
        gs = [
            LayerGaussian(t[f"layer{la}.mean"], t[f"layer{la}.basis"], t[f"layer{la}.eigvals"], fl, sh)
            for la, fl, sh in zip(meta["layers"], meta["floor"], meta["shrinkage"], strict=True)
        ]
        return cls(
            meta["layers"],
            gs,
            meta["calib_mean"],
            meta["calib_std"],
            meta["ensemble"],
            meta["threshold"],
            meta["normalize"],
            meta["site_point"],
            meta["positions"],
            meta.get("provenance", {}),
        )
