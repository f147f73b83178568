"""Readouts of a model: the probe table (linear, polynomial, MLP, suffix), the predict-control
discrepancy, and the Mahalanobis monitor, each from a model and its refusal prompt splits.

Activations are ``resid_pre`` at the last end-of-instruction token (``eoi:-1``: the last token
before the answer), the site of the audit's probes and of causal selection. Techniques live in
:mod:`safetyscope.analysis` (probes, nonlinear_probes, suffix, mahalanobis, monitor) and
:mod:`safetyscope.causal.discrepancy`; this module collects activations and calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations import Positions, Site, collect
from safetyscope.analysis.mahalanobis import MahalanobisMonitor
from safetyscope.analysis.monitor import MonitorReport, monitor_study
from safetyscope.analysis.nonlinear_probes import mlp_fitter, polynomial_fitter
from safetyscope.analysis.probes import ProbeReport, probe_layers
from safetyscope.analysis.suffix import check_suffix, default_suffix, with_suffix
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.pipelines.refusal import RefusalPrompts

#: Probe kinds of the table: poly2/poly3 are one progressive TPC truncated at order 2 and 3
#: (order 1 is the linear probe itself); suffix is the linear probe on suffixed prompts.
PROBE_KINDS = ("linear", "poly2", "poly3", "mlp", "suffix")


def layer_acts(
    lm: LoadedModel, prompts: Sequence[str], layers: Sequence[int], *, progress: bool = False
) -> Tensor:
    """``resid_pre`` at ``eoi:-1`` for every prompt and layer: ``[n, layers, d]`` float32."""
    if not prompts:
        raise SafetyscopeError("No prompts to read activations from.")
    sites = [Site(layer) for layer in layers]
    res = collect(lm, list(prompts), sites, Positions("eoi", index=-1), "none", progress=progress)
    return torch.stack([res.per_prompt(s).reshape(len(prompts), -1) for s in sites], 1).float()


@dataclass
class ProbeTable:
    """One :class:`ProbeReport` per probe kind, on the same prompts, split and controls."""

    reports: dict[str, ProbeReport]
    suffix: str | None
    provenance: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows ``{kind, layer, accuracy, accuracy_ci, auc, control_accuracy, selectivity}``."""
        return [
            {
                "kind": kind,
                "layer": p.layer,
                "accuracy": p.accuracy,
                "accuracy_ci": list(p.accuracy_ci),
                "auc": p.auc,
                "control_accuracy": p.control_accuracy,
                "control_auc": p.control_auc,
                "selectivity": p.selectivity,
            }
            for kind, rep in self.reports.items()
            for p in rep.layers
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "reports": {k: v.to_dict() for k, v in self.reports.items()},
            "suffix": self.suffix,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeTable:
        """Inverse of :meth:`to_dict`."""
        return cls(
            {k: ProbeReport.from_dict(v) for k, v in data["reports"].items()},
            data.get("suffix"),
            dict(data.get("provenance", {})),
        )


def probe_table(
    lm: LoadedModel,
    prompts: RefusalPrompts,
    layers: Sequence[int],
    *,
    kinds: Sequence[str] = PROBE_KINDS,
    suffix: str | None = None,
    rank: int = 4,
    hidden: int = 32,
    n_controls: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> ProbeTable:
    """Probe every layer with every kind on the train + validation prompts (70/30 split inside)."""
    unknown = [k for k in kinds if k not in PROBE_KINDS]
    if unknown or not kinds:
        raise SafetyscopeError(f"Unknown probe kinds {unknown}; choose from {', '.join(PROBE_KINDS)}.")
    harmful = prompts.harmful_train + prompts.harmful_val
    harmless = prompts.harmless_train + prompts.harmless_val
    layers = list(layers)
    common: dict[str, Any] = {"layers": layers, "seed": seed, "n_controls": n_controls}
    prov = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "site": "resid_pre",
        "positions": "eoi:-1",
        "prompts": prompts.source,
        "safetyscope_version": __version__,
    }
    fitters = {
        "linear": None,
        "poly2": polynomial_fitter(2, rank, seed=seed),
        "poly3": polynomial_fitter(3, rank, seed=seed),
        "mlp": mlp_fitter(hidden, seed=seed),
    }
    reports: dict[str, ProbeReport] = {}
    plain = [k for k in kinds if k != "suffix"]
    if plain:
        a, b = (
            layer_acts(lm, harmful, layers, progress=progress),
            layer_acts(lm, harmless, layers, progress=progress),
        )
        for kind in plain:
            reports[kind] = probe_layers(a, b, fit=fitters[kind], method=kind, provenance=prov, **common)
    used = None
    if "suffix" in kinds:
        used = suffix or default_suffix(lm.tokenizer)
        check_suffix(lm.tokenizer, used)
        a = layer_acts(lm, with_suffix(harmful, used), layers, progress=progress)
        b = layer_acts(lm, with_suffix(harmless, used), layers, progress=progress)
        reports["suffix"] = probe_layers(a, b, method="suffix", provenance=prov | {"suffix": used}, **common)
    return ProbeTable({k: reports[k] for k in kinds}, used, prov | {"rank": rank, "hidden": hidden})


def monitor_fit(
    lm: LoadedModel,
    prompts: RefusalPrompts,
    layers: Sequence[int],
    *,
    top_k: int = 3,
    quantile: float = 0.95,
    normalize: bool = False,
    n_controls: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> tuple[MahalanobisMonitor, MonitorReport]:
    """Fit the Mahalanobis monitor on the train/val splits and evaluate it on the test split."""
    layers = list(layers)
    splits = {
        f"{c}_{s}": layer_acts(lm, getattr(prompts, f"{c}_{s}"), layers, progress=progress)
        for s in ("train", "val", "test")
        for c in ("harmful", "harmless")
    }
    prov = {"model": lm.spec, "model_fingerprint": lm.fingerprint(), "prompts": prompts.source}
    return monitor_study(
        splits,
        layers,
        top_k=top_k,
        quantile=quantile,
        normalize=normalize,
        n_controls=n_controls,
        seed=seed,
        provenance=prov,
    )


def monitor_score(
    lm: LoadedModel, monitor: MahalanobisMonitor, prompts: Sequence[str]
) -> list[dict[str, Any]]:
    """Score prompts with a saved monitor: ensemble score, flag, and each layer's distance."""
    fp = monitor.provenance.get("model_fingerprint")
    if fp is not None and fp != lm.fingerprint():
        raise SafetyscopeError(
            f"The monitor was fitted on another model ({monitor.provenance.get('model')}, "
            f"fingerprint {fp}); fit one for {lm.spec}."
        )
    if monitor.site_point != "resid_pre" or monitor.positions != "eoi:-1":
        raise SafetyscopeError(f"Monitor site {monitor.site_point} at {monitor.positions} is not supported.")
    bad = [la for la in monitor.layers if not 0 <= la < lm.n_layers]
    if bad:
        raise SafetyscopeError(f"Monitor layers {bad} do not exist in a {lm.n_layers}-layer model.")
    dist = monitor.layer_distances(layer_acts(lm, prompts, monitor.layers))
    score = monitor.ensemble_score(dist)
    return [
        {
            "prompt": p,
            "score": float(s),
            "flagged": bool(s > monitor.threshold),
            "distances": {str(la): float(d) for la, d in zip(monitor.layers, row, strict=True)},
        }
        for p, s, row in zip(prompts, score, dist, strict=True)
    ]
