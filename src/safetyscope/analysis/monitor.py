"""Fit and evaluate a Mahalanobis monitor: layer selection by AUROC, a multi-layer ensemble, a control.

Protocol (compendium 8.4-8.5; Anthony et al. 2023: no single layer is best, so ensemble):

1. **Fit** one harmless Gaussian per layer on the *train* harmless rows
   (:func:`safetyscope.analysis.mahalanobis.fit_gaussian`).
2. **Calibrate and select** on the *validation* rows: each layer's AUROC of the distance
   (harmful = positive), the z-scaling of each layer by its harmless validation distances, and
   the ensemble = the ``top_k`` layers by validation AUROC. The alarm threshold is the
   ``quantile`` of the ensemble score on harmless validation rows (a target false-positive rate
   of ``1 - quantile``).
3. **Report** on the held-out *test* rows only: AUROC by layer, ensemble AUROC, and the
   true- and false-positive rates at the threshold with Wilson intervals. Layers are chosen on
   validation, so the test AUROC of the ensemble carries no selection bias.

**Control** (shuffled labels): in each split harmful and harmless rows are pooled and their
labels permuted (seeded); the whole protocol is rerun on the permuted labels (fit on the rows
now labelled harmless, select on permuted validation labels, score against permuted test
labels). The control AUROC should sit near 0.5; a monitor is only as good as its gap to it.

Layers whose activations are identical for every prompt (layer 0 at a template token) are left
out and listed in the provenance as ``skipped_layers``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.analysis.mahalanobis import MahalanobisMonitor, fit_gaussian, l2_normalise
from safetyscope.analysis.probes import auc_from_ranks
from safetyscope.directions.covariance import Shrinkage
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.metrics import Rate

Acts = Float[Tensor, "n layers d"]


def _auroc(pos: Tensor, neg: Tensor) -> float:
    return auc_from_ranks(torch.cat([pos, neg]), torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]))


def fit_monitor(
    harmless_train: Acts,
    harmful_val: Acts,
    harmless_val: Acts,
    layers: list[int],
    *,
    top_k: int = 3,
    quantile: float = 0.95,
    shrinkage: Shrinkage = "ledoit_wolf",
    normalize: bool = False,
    provenance: dict[str, Any] | None = None,
) -> tuple[MahalanobisMonitor, list[float]]:
    """Steps 1-2 of the protocol; returns the monitor and each layer's validation AUROC."""
    if not 0.0 < quantile < 1.0:
        raise SafetyscopeError(f"quantile must lie in (0, 1), got {quantile}.")
    if top_k < 1:
        raise SafetyscopeError(f"top_k must be >= 1, got {top_k}.")
    for name, t in (
        ("harmless_train", harmless_train),
        ("harmful_val", harmful_val),
        ("harmless_val", harmless_val),
    ):
        if t.ndim != 3 or t.shape[1] != len(layers) or t.shape[0] < 2:
            raise SafetyscopeError(f"{name} must be [n >= 2, {len(layers)}, d], got {tuple(t.shape)}.")
    prep = (lambda x: l2_normalise(x.double())) if normalize else (lambda x: x)
    train = prep(harmless_train)
    gaussians = [fit_gaussian(train[:, i], shrinkage) for i in range(len(layers))]
    mon = MahalanobisMonitor(
        layers,
        gaussians,
        [0.0] * len(layers),
        [1.0] * len(layers),
        [layers[0]],
        0.0,
        normalize,
        provenance=dict(provenance or {}),
    )
    d_pos, d_neg = mon.layer_distances(harmful_val), mon.layer_distances(harmless_val)
    val_auc = [_auroc(d_pos[:, i], d_neg[:, i]) for i in range(len(layers))]
    mon.calib_mean = [float(v) for v in d_neg.mean(0)]
    mon.calib_std = [float(v) for v in d_neg.std(0).clamp_min(1e-12)]
    order = sorted(range(len(layers)), key=lambda i: (-val_auc[i], i))
    mon.ensemble = sorted(layers[i] for i in order[: min(top_k, len(layers))])
    mon.threshold = float(torch.quantile(mon.ensemble_score(d_neg), quantile))
    mon.provenance |= {
        "val_auroc": val_auc,
        "top_k": top_k,
        "quantile": quantile,
        "n_fit": int(harmless_train.shape[0]),
        "n_val": [int(harmful_val.shape[0]), int(harmless_val.shape[0])],
        "safetyscope_version": __version__,
    }
    return mon, val_auc


@dataclass
class MonitorLayer:
    """One layer: validation AUROC (used to select), test AUROC, and the control's test AUROC."""

    layer: int
    val_auroc: float
    test_auroc: float
    control_auroc: float
    in_ensemble: bool


@dataclass
class MonitorReport:
    """Test-set figures of a fitted monitor beside its shuffled-label control."""

    layers: list[MonitorLayer]
    ensemble: list[int]
    ensemble_auroc: float
    control_ensemble_auroc: float
    best_layer: int  # by validation AUROC
    tpr: Rate  # harmful test rows flagged at the threshold
    fpr: Rate  # harmless test rows flagged
    n_controls: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            [MonitorLayer(**x) for x in data["layers"]],
            list(data["ensemble"]),
            data["ensemble_auroc"],
            data["control_ensemble_auroc"],
            data["best_layer"],
            Rate(**data["tpr"]),
            Rate(**data["fpr"]),
            data["n_controls"],
            dict(data.get("provenance", {})),
        )


def _shuffle(pos: Acts, neg: Acts, gen: torch.Generator) -> tuple[Acts, Acts]:
    pool = torch.cat([pos, neg])
    perm = torch.randperm(pool.shape[0], generator=gen)
    return pool[perm[: pos.shape[0]]], pool[perm[pos.shape[0] :]]


def _test(mon: MahalanobisMonitor, pos: Acts, neg: Acts) -> tuple[list[float], float, Tensor, Tensor]:
    dp, dn = mon.layer_distances(pos), mon.layer_distances(neg)
    per = [_auroc(dp[:, i], dn[:, i]) for i in range(len(mon.layers))]
    sp, sn = mon.ensemble_score(dp), mon.ensemble_score(dn)
    return per, _auroc(sp, sn), sp, sn


def monitor_study(
    splits: dict[str, Acts],
    layers: list[int],
    *,
    top_k: int = 3,
    quantile: float = 0.95,
    shrinkage: Shrinkage = "ledoit_wolf",
    normalize: bool = False,
    n_controls: int = 3,
    seed: int = 0,
    provenance: dict[str, Any] | None = None,
) -> tuple[MahalanobisMonitor, MonitorReport]:
    """The full protocol on ``splits`` (keys ``{harmful,harmless}_{train,val,test}``, each ``[n, layers, d]``)."""
    need = [f"{c}_{s}" for s in ("train", "val", "test") for c in ("harmful", "harmless")]
    missing = [k for k in need if k not in splits]
    if missing:
        raise SafetyscopeError(f"monitor_study needs activations for {missing}.")
    if n_controls < 1:
        raise SafetyscopeError(f"n_controls must be >= 1, got {n_controls}.")
    # a layer where every row is the same (layer 0 at a template token: one embedding) carries nothing
    pooled = torch.cat([splits[k] for k in need]).double()
    spread = pooled.var(0).sum(-1)
    live = [i for i in range(len(layers)) if float(spread[i]) > 1e-12 * float(spread.max())]
    if not live:
        raise SafetyscopeError("Every layer's activations are identical across prompts: nothing to monitor.")
    skipped = [layers[i] for i in range(len(layers)) if i not in live]
    if skipped:
        splits = {k: v[:, live] for k, v in splits.items()}
        layers = [layers[i] for i in live]
    provenance = dict(provenance or {}, skipped_layers=skipped)
    kw: dict[str, Any] = {
        "top_k": top_k,
        "quantile": quantile,
        "shrinkage": shrinkage,
        "normalize": normalize,
    }
    mon, val_auc = fit_monitor(
        splits["harmless_train"],
        splits["harmful_val"],
        splits["harmless_val"],
        layers,
        provenance=provenance,
        **kw,
    )
    per, ens_auc, sp, sn = _test(mon, splits["harmful_test"], splits["harmless_test"])
    gen = torch.Generator().manual_seed(seed)
    c_per, c_ens = torch.zeros(len(layers), dtype=torch.float64), 0.0
    for _ in range(n_controls):
        sh = {
            s: _shuffle(splits[f"harmful_{s}"], splits[f"harmless_{s}"], gen)
            for s in ("train", "val", "test")
        }
        cmon, _ = fit_monitor(sh["train"][1], sh["val"][0], sh["val"][1], layers, **kw)
        cp, ce, _, _ = _test(cmon, *sh["test"])
        c_per += torch.tensor(cp, dtype=torch.float64)
        c_ens += ce
    c_per /= n_controls
    rows = [
        MonitorLayer(la, val_auc[i], per[i], float(c_per[i]), la in mon.ensemble)
        for i, la in enumerate(layers)
    ]
    best = layers[max(range(len(layers)), key=lambda i: (val_auc[i], -i))]
    report = MonitorReport(
        rows,
        mon.ensemble,
        ens_auc,
        c_ens / n_controls,
        best,
        Rate.from_flags((sp > mon.threshold).tolist()),
        Rate.from_flags((sn > mon.threshold).tolist()),
        n_controls,
        dict(mon.provenance)
        | {"seed": seed, "normalize": normalize, "n_test": [int(sp.numel()), int(sn.numel())]},
    )
    return mon, report
