"""Which (source layer, target layer) pair to map: a cheap similarity for every pair.

* **Linear CKA** (Kornblith et al. 2019) on centred paired rows ``X`` (``n × d_src``), ``Y``
  (``n × d_tgt``): ``‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)``; equal to HSIC with linear kernels,
  invariant to rotations and isotropic scaling of either side.
* **Held-out ridge R²**: fit :func:`~safetyscope.transfer.maps.fit_affine` on the training
  prompts' rows and score ``1 − FVU`` on held-out prompts' rows (prompts never straddle the split).

:func:`propose_pair` picks the pair to map. The post maps each model's *last steerable layer*;
given *specific* steerability curves (rate minus the noise control) it keeps layers steerable at
``min_steer`` or more, takes the deepest steerable source layer and, among steerable target
layers, the one with the best held-out R². With no steerable source layer (the map need not
start at one: it carries the source's ``|dev|`` activations) it takes the best R² into a
steerable target layer; with none of those, the best R² overall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.transfer.losses import fvu
from safetyscope.transfer.maps import fit_affine
from safetyscope.transfer.pairs import PairedActivations, TransferError


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of paired rows (``x``: ``[n, d1]``, ``y``: ``[n, d2]``), in float64."""
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise TransferError(f"linear_cka needs >= 2 paired rows, got {x.shape[0]} and {y.shape[0]}.")
    xc, yc = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    num = (yc.T @ xc).pow(2).sum()
    den = (xc.T @ xc).norm() * (yc.T @ yc).norm()
    return float(num / den.clamp_min(1e-30))


def ridge_r2(x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor, ridge: float = 1e-3) -> float:
    """Held-out ``R² = 1 − FVU`` of a closed-form ridge affine map fit on ``x -> y``."""
    m = fit_affine(x, y, ridge)
    with torch.no_grad():
        return 1.0 - float(fvu(m(x_val), y_val.float()))


@dataclass
class LayerPairScan:
    """CKA and held-out R² for every (source layer, target layer) pair, and the proposed pair."""

    src_layers: list[int]
    tgt_layers: list[int]
    cka: list[list[float]]  # [src][tgt]
    r2: list[list[float]]
    proposed: tuple[int, int]
    rule: str
    steerability: dict[str, dict[int, float]] = field(default_factory=dict)  # "src"/"tgt" -> layer -> rate
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (layer keys as strings)."""
        d = asdict(self)
        d["proposed"] = list(self.proposed)
        d["steerability"] = {k: {str(a): b for a, b in v.items()} for k, v in self.steerability.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerPairScan:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["proposed"] = tuple(d["proposed"])
        d["steerability"] = {
            k: {int(a): b for a, b in v.items()} for k, v in d.get("steerability", {}).items()
        }
        return cls(**d)


def propose_pair(
    src_layers: list[int],
    tgt_layers: list[int],
    r2: list[list[float]],
    steerability: Mapping[str, Mapping[int, float]] | None = None,
    min_steer: float = 0.2,
) -> tuple[tuple[int, int], str]:
    """The pair to map and the rule that chose it (see the module docstring).

    ``steerability[side][layer]`` should be *specific* steerability (the rate minus its noise
    control): at the embedding layer any write of the trigger tokens removes the backdoor.
    """

    def best(ss: list[int], ts: list[int]) -> tuple[int, int]:
        return max(
            ((a, b) for a in ss for b in ts), key=lambda p: r2[src_layers.index(p[0])][tgt_layers.index(p[1])]
        )

    if steerability:
        s_ok = [x for x in src_layers if steerability.get("src", {}).get(x, 0.0) >= min_steer]
        t_ok = [x for x in tgt_layers if steerability.get("tgt", {}).get(x, 0.0) >= min_steer]
        if s_ok and t_ok:
            src = max(s_ok)
            pair = best([src], t_ok)
            return pair, (
                f"deepest source layer steerable >= {min_steer} ({src}); among target layers steerable "
                f">= {min_steer} ({t_ok}) the best held-out ridge R^2"
            )
        if t_ok:
            pair = best(src_layers, t_ok)
            return pair, (
                f"no source layer steerable >= {min_steer}; best held-out ridge R^2 into a target layer "
                f"steerable >= {min_steer} ({t_ok})"
            )
    pair = best(src_layers, tgt_layers)
    return pair, "best held-out ridge R^2 over all pairs (no target layer steerable)"


def scan_pairs(
    pairs: PairedActivations,
    *,
    heldout: float = 0.2,
    seed: int = 0,
    ridge: float = 1e-3,
    max_rows: int = 20000,
    steerability: Mapping[str, Mapping[int, float]] | None = None,
    min_steer: float = 0.2,
) -> LayerPairScan:
    """CKA (on all rows, subsampled to ``max_rows``) and held-out ridge R² for every collected pair."""
    train, val = pairs.split(heldout, seed)
    g = torch.Generator().manual_seed(seed)
    sub = torch.randperm(pairs.n_tokens, generator=g)[:max_rows]
    src_layers, tgt_layers = sorted(pairs.src), sorted(pairs.tgt)
    cka = [[linear_cka(pairs.src[s][sub], pairs.tgt[t][sub]) for t in tgt_layers] for s in src_layers]
    r2 = [
        [ridge_r2(train.src[s], train.tgt[t], val.src[s], val.tgt[t], ridge) for t in tgt_layers]
        for s in src_layers
    ]
    proposed, rule = propose_pair(src_layers, tgt_layers, r2, steerability, min_steer)
    steer = {k: {int(a): float(b) for a, b in v.items()} for k, v in (steerability or {}).items()}
    prov = dict(
        pairs.provenance,
        heldout=heldout,
        seed=seed,
        ridge=ridge,
        rows_cka=int(sub.numel()),
        rows_train=train.n_tokens,
        rows_val=val.n_tokens,
    )
    return LayerPairScan(src_layers, tgt_layers, cka, r2, proposed, rule, steer, prov)
