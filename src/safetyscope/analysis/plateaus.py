"""Activation plateaus around real and synthetic activations (Giglemiani et al. 2024, arXiv 2409.15019).

Start from a real activation ``A`` (last token, early site). Step towards a target ``T``:

    relative:  x_t = A + (t / n)·(T - A)                  t = 0..n
    absolute:  x_t = A + t·s·(T - A)/‖T - A‖             (fixed step size s)

and read the change at a late site, c_t = ‖L(x_t) - L(A)‖, normalised u_t = c_t / c_n. Measures:

* **blow-up step**: argmax_t (u_{t+1} - u_t) + 1, kept only when that slope times n reaches
  ``min_slope`` (default 2: twice a straight line); curves with no such step count as no blow-up;
* **plateau length**: the first t with u_t ≥ ``threshold`` (default 0.1);
* each kind's blow-up and plateau distributions against the ``real`` kind's: the two-sample
  Kolmogorov-Smirnov statistic.

The paper: real activations sit on plateaus (the late site barely moves, then jumps), longer than
those around synthetic activations built from SAE latents, and synthetic activations with matched
sparsity and cosine structure resemble real ones more than random ones do. Targets and the norm
control are in :mod:`safetyscope.analysis.plateau_targets`; every row runs in one batched pass
(:func:`safetyscope.analysis.readout.read_under`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.sites import Site
from safetyscope.analysis.plateau_targets import (
    BASE_KINDS,
    SAE_KINDS,
    SAELike,
    build_targets,
    derangement,
    latent_frequency,
)
from safetyscope.analysis.readout import read_last, read_under
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

STEP_MODES: tuple[str, ...] = ("relative", "absolute")


def perturbation_path(base: Tensor, target: Tensor, n_steps: int, mode: str = "relative",
                      step_size: float | None = None) -> Tensor:
    """``[rows, n_steps + 1, d]`` points from each base towards its target."""
    if mode not in STEP_MODES:
        raise SafetyscopeError(f"Unknown step mode {mode!r}; use one of {STEP_MODES}.")
    if n_steps < 2:
        raise SafetyscopeError(f"n_steps must be >= 2, got {n_steps}.")
    t = torch.arange(n_steps + 1, dtype=torch.float64)[None, :, None]
    delta = (target - base).double()[:, None]
    if mode == "relative":
        return (base.double()[:, None] + t / n_steps * delta).float()
    if step_size is None or not step_size > 0:
        raise SafetyscopeError("Absolute steps need a step_size > 0.")
    unit = delta / delta.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (base.double()[:, None] + t * step_size * unit).float()


def blowup_and_plateau(curves: Tensor, min_slope: float = 2.0, threshold: float = 0.1) -> tuple[list[float], list[float]]:
    """Blow-up step (NaN when no slope reaches ``min_slope``) and plateau length of normalised curves ``[rows, n+1]``."""
    n = curves.shape[1] - 1
    diff = curves[:, 1:] - curves[:, :-1]
    best = diff.max(dim=1)
    blow = [float(i) + 1 if v * n >= min_slope else math.nan for v, i in zip(best.values.tolist(), best.indices.tolist(),
                                                                              strict=True)]
    over = curves >= threshold
    plateau = [float(row.nonzero()[0]) if row.any() else float(n + 1) for row in over]
    return blow, plateau


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| (NaNs dropped; NaN if a side is empty)."""
    x = torch.tensor([v for v in a if not math.isnan(v)], dtype=torch.float64)
    y = torch.tensor([v for v in b if not math.isnan(v)], dtype=torch.float64)
    if not len(x) or not len(y):
        return math.nan
    grid = torch.cat([x, y]).unique()
    fx = torch.searchsorted(x.sort().values, grid, right=True).double() / len(x)
    fy = torch.searchsorted(y.sort().values, grid, right=True).double() / len(y)
    return float((fx - fy).abs().max())


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    x = [v for v in values if not math.isnan(v)]
    if not x:
        return math.nan, math.nan
    m = sum(x) / len(x)
    return m, (sum((v - m) ** 2 for v in x) / (len(x) - 1)) ** 0.5 if len(x) > 1 else 0.0


@dataclass
class PlateauResult:
    """Per target kind: blow-up steps, plateau lengths and the median change curve."""

    model: str
    site: str
    read_site: str
    mode: str
    n_steps: int
    kinds: list[str]
    blowup: dict[str, list[float]]
    plateau: dict[str, list[float]]
    median_curve: dict[str, list[float]]
    sae: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def table(self) -> dict[str, dict[str, float]]:
        """Per kind: ``blowup_mean``, ``blowup_sd``, ``plateau_mean``, ``plateau_sd``, ``ks_vs_real`` (blow-up),
        ``ks_plateau_vs_real``, ``no_blowup`` (share of curves without one) and ``n``."""
        out = {}
        for kind in self.kinds:
            bm, bs = _mean_sd(self.blowup[kind])
            pm, ps = _mean_sd(self.plateau[kind])
            nan = sum(math.isnan(v) for v in self.blowup[kind])
            out[kind] = {"blowup_mean": bm, "blowup_sd": bs, "plateau_mean": pm, "plateau_sd": ps,
                         "ks_vs_real": ks_statistic(self.blowup[kind], self.blowup["real"]),
                         "ks_plateau_vs_real": ks_statistic(self.plateau[kind], self.plateau["real"]),
                         "no_blowup": nan / max(1, len(self.blowup[kind])), "n": len(self.blowup[kind])}
        return out

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "site": self.site, "read_site": self.read_site, "mode": self.mode,
                "n_steps": self.n_steps, "sae": self.sae, "kinds": self.table(),
                "note": None if self.sae else "no --sae: only the non-SAE targets ran"}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "table": self.table()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlateauResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=_nan_safe))

    @classmethod
    def load(cls, path: str | Path) -> PlateauResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _nan_safe(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def plateau_study(lm: LoadedModel, seqs: Sequence[Sequence[int]], *, site: Site | None = None,
                  read: Site | None = None, sae: SAELike | None = None, sae_name: str | None = None,
                  kinds: Sequence[str] | None = None, n_steps: int = 20, mode: str = "relative",
                  step_size: float | None = None, min_slope: float = 2.0, threshold: float = 0.1, seed: int = 0,
                  max_batch_tokens: int | None = None, progress: bool = False) -> PlateauResult:
    """Perturb the last-token activation of each sequence at ``site`` towards each kind of target.

    Args:
        seqs: token sequences; each one is a base activation (and, deranged, a real target).
        site: the early site (default ``L0.resid_post``); read: the late site (default: last block output).
        sae: an SAE at ``site`` (:class:`SAELike`); without it only :data:`BASE_KINDS` run.
        kinds: target kinds (default: every kind the SAE allows).
        mode: ``relative`` or ``absolute``; ``step_size`` for absolute (default: the median
            real-pair distance / ``n_steps``).
    """
    site = site or Site(0, "resid_post")
    read = read or Site(lm.n_layers - 1, "resid_post")
    kinds = list(kinds or (BASE_KINDS + (SAE_KINDS if sae is not None else ())))
    if "real" not in kinds:
        kinds.insert(0, "real")
    g = torch.Generator().manual_seed(seed)
    clean = read_last(lm, seqs, [site, read], max_batch_tokens=max_batch_tokens)
    acts, late = clean[site.key], clean[read.key]
    real_targets = acts[derangement(len(seqs), g)]
    freq = latent_frequency(sae, acts) if sae is not None else None
    targets = {k: build_targets(k, acts, real_targets, g, sae, freq) for k in kinds}
    if mode == "absolute" and step_size is None:
        step_size = float((real_targets - acts).norm(dim=-1).median()) / n_steps
    points = torch.cat([perturbation_path(acts, targets[k], n_steps, mode, step_size) for k in kinds])
    rows = [s for _ in kinds for s in seqs]
    per_row = [s for s in rows for _ in range(n_steps + 1)]
    out = read_under(lm, per_row, site, points.reshape(-1, points.shape[-1]), read,
                     max_batch_tokens=max_batch_tokens, progress=progress)
    out = out.reshape(len(kinds), len(seqs), n_steps + 1, -1).double()
    change = (out - late.double()[None, :, None]).norm(dim=-1)
    curves = change / change[..., -1:].clamp_min(1e-12)
    blowup, plateau, median = {}, {}, {}
    for k, kind in enumerate(kinds):
        blowup[kind], plateau[kind] = blowup_and_plateau(curves[k], min_slope, threshold)
        median[kind] = curves[k].median(dim=0).values.tolist()
    prov = {"model": lm.spec, "model_fingerprint": lm.fingerprint(), "n_base": len(seqs), "seed": seed,
            "step_size": step_size, "min_slope": min_slope, "threshold": threshold, "method": "activation_plateaus",
            "safetyscope_version": __version__, "model_dtype": str(lm.dtype)}
    return PlateauResult(lm.spec, site.key, read.key, mode, n_steps, kinds, blowup, plateau, median, sae_name, prov)
