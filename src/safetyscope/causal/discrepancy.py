"""Predict-control discrepancy (compendium 4.7): do the directions that classify refusal also control it?

The claim under test: *steering vectors effective at altering model behaviour are less effective
at classifying it, and vice versa; probe-derived and steering-derived directions often differ.*
At each layer three unit directions are compared:

* **probe** — the weights of the logistic probe (:func:`safetyscope.directions.fit_logistic`) on
  the training prompts' ``resid_pre`` at the last end-of-instruction token;
* **diff_means** — ``μ_harmful − μ_harmless`` of the same activations;
* **selected** — the causally selected candidate of that layer: among the layer's
  end-of-instruction positions, the difference in means with the lowest exact bypass score
  (:func:`safetyscope.causal.rank_candidates`, Arditi et al.).

For each: its cosines with the other two; how well it **classifies** (the held-out ROC AUC of the
projection ``xᵀv̂`` of test activations at that layer, and its d′, which keeps ranking directions
when every AUC is 1); how well it **controls**: refusal on
held-out harmful prompts with ``v̂`` ablated from every residual write
(:func:`~safetyscope.interventions.hooks.ablate`), and refusal on held-out harmless prompts with
``‖μ₊ − μ₋‖ v̂`` added at the layer's ``resid_pre`` on the prompt tokens. All three are applied at
the same norm, so one random direction of that norm per layer (:func:`random_like`) is the
control of all three. Layers where the two classes' means coincide (e.g. layer 0 at a template
token, one embedding for every prompt) are skipped and listed. Rates are judged completions with 95% Wilson intervals
(:func:`~safetyscope.causal.run_arms`; the baseline is generated once).

Across every (direction, layer) point the report gives Spearman's ρ between classification
(d′) and control (the mean of the ablation drop and the induced refusal): the claim predicts
ρ < 0. A point estimate over a handful of points: read it as exploratory. Per layer,
:meth:`DiscrepancyReport.supports_claim` asks whether the best classifier (highest AUC, ties by d′)
controls refusal less than the best controller with non-overlapping Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations import Positions, Site, collect
from safetyscope.analysis.probes import auc_from_ranks
from safetyscope.causal.arms import Arm, BaselineCache, ContextFactory, run_arms
from safetyscope.causal.controls import random_like
from safetyscope.causal.selection import candidate_directions, rank_candidates
from safetyscope.directions.logistic import fit_logistic
from safetyscope.evaluation.metrics import Rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.interventions.hooks import ablate, add
from safetyscope.model.loading import LoadedModel

DIRECTIONS = ("probe", "diff_means", "selected")
#: What the paper says, shown beside our figures.
PAPER_CLAIM = (
    "Steering vectors effective at altering model behaviour are less effective at classifying it, "
    "and vice versa: probe-derived and steering-derived directions often differ (compendium 4.7)."
)


@dataclass
class DirectionScore:
    """One direction at one layer: classification and control, beside nothing (the layer holds the control)."""

    auc: float
    dprime: float  # (m₊ − m₋) / √((s₊² + s₋²)/2) of the test projections: does not saturate at AUC 1
    ablated_refusal: Rate  # harmful test prompts, direction ablated everywhere
    induced_refusal: Rate  # harmless test prompts, direction added at the layer

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "auc": self.auc,
            "dprime": self.dprime,
            "ablated_refusal": self.ablated_refusal.to_dict(),
            "induced_refusal": self.induced_refusal.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DirectionScore:
        """Inverse of :meth:`to_dict`."""
        return cls(d["auc"], d["dprime"], Rate(**d["ablated_refusal"]), Rate(**d["induced_refusal"]))


@dataclass
class LayerDiscrepancy:
    """The three directions (and the random control, key ``random``) at one layer."""

    layer: int
    selected_position: int
    norm: float  # the norm every direction is added at (‖μ₊ − μ₋‖ at eoi:-1)
    cosines: dict[str, float]  # "probe|diff_means", "probe|selected", "diff_means|selected"
    scores: dict[str, DirectionScore]

    def control_effect(self, name: str, baseline_harmful: float) -> float:
        """Mean of the ablation drop and the induced refusal (rates in [0, 1])."""
        s = self.scores[name]
        return 0.5 * ((baseline_harmful - (s.ablated_refusal.rate or 0.0)) + (s.induced_refusal.rate or 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "layer": self.layer,
            "selected_position": self.selected_position,
            "norm": self.norm,
            "cosines": self.cosines,
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerDiscrepancy:
        """Inverse of :meth:`to_dict`."""
        return cls(
            d["layer"],
            d["selected_position"],
            d["norm"],
            dict(d["cosines"]),
            {k: DirectionScore.from_dict(v) for k, v in d["scores"].items()},
        )


@dataclass
class DiscrepancyReport:
    """Per-layer predict-control table, the baselines and the claim check."""

    layers: list[LayerDiscrepancy]
    baseline_harmful: Rate
    baseline_harmless: Rate
    spearman: float | None  # rank correlation of d′ and control effect over (direction, layer) points
    paper_claim: str = PAPER_CLAIM
    provenance: dict[str, Any] = field(default_factory=dict)

    def best_classifier(self, layer: LayerDiscrepancy) -> str:
        """The direction with the highest AUC at ``layer`` (ties broken by d′)."""
        return max(DIRECTIONS, key=lambda n: (layer.scores[n].auc, layer.scores[n].dprime))

    def best_controllers(self, layer: LayerDiscrepancy) -> list[str]:
        """The directions with the largest control effect at ``layer`` (several when tied)."""
        base = self.baseline_harmful.rate or 0.0
        effects = {n: layer.control_effect(n, base) for n in DIRECTIONS}
        top = max(effects.values())
        return [n for n in DIRECTIONS if effects[n] >= top - 1e-12]

    def supports_claim(self, layer: LayerDiscrepancy) -> bool:
        """Whether the best classifier at ``layer`` controls refusal less than a best controller, beyond
        the intervals: that controller's ablated harmful refusal lies below the classifier's (95% Wilson
        intervals apart), or its induced harmless refusal lies above."""
        cls = layer.scores[self.best_classifier(layer)]
        for name in self.best_controllers(layer):
            ctl = layer.scores[name]
            if name == self.best_classifier(layer):
                return False
            if (
                ctl.ablated_refusal.ci_high < cls.ablated_refusal.ci_low
                or ctl.induced_refusal.ci_low > cls.induced_refusal.ci_high
            ):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "layers": [x.to_dict() for x in self.layers],
            "baseline_harmful": self.baseline_harmful.to_dict(),
            "baseline_harmless": self.baseline_harmless.to_dict(),
            "spearman": self.spearman,
            "paper_claim": self.paper_claim,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiscrepancyReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            [LayerDiscrepancy.from_dict(x) for x in d["layers"]],
            Rate(**d["baseline_harmful"]),
            Rate(**d["baseline_harmless"]),
            d.get("spearman"),
            d.get("paper_claim", PAPER_CLAIM),
            dict(d.get("provenance", {})),
        )


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's ρ (Pearson correlation of average ranks); ``None`` when either side is constant."""

    def ranks(v: Sequence[float]) -> Tensor:
        t = torch.tensor(v, dtype=torch.float64)
        return torch.tensor(
            [float((t < a).sum()) + (float((t == a).sum()) + 1) / 2 for a in t], dtype=torch.float64
        )

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = float(rx.norm() * ry.norm())
    return None if den == 0 else float(rx @ ry) / den


def _acts(lm: LoadedModel, prompts: Sequence[str], layers: Sequence[int]) -> Tensor:
    sites = [Site(layer) for layer in layers]
    res = collect(lm, list(prompts), sites, Positions("eoi", index=-1), "none", progress=False)
    return torch.stack([res.per_prompt(s).reshape(len(prompts), -1) for s in sites], 1).double()


def dprime(scores: Tensor, labels: Tensor) -> float:
    """Sensitivity index ``(m₊ − m₋) / √((s₊² + s₋²)/2)`` of 1-D scores (labels 1 = positive)."""
    y = labels.bool()
    pos, neg = scores[y].double(), scores[~y].double()
    sd = float(((pos.var() + neg.var()) / 2).sqrt())
    return float(pos.mean() - neg.mean()) / max(sd, 1e-12)


def _ablation(lm: LoadedModel, u: Tensor) -> ContextFactory:
    return lambda: ablate(lm, u)


def _addition(lm: LoadedModel, v: Tensor, site: Site) -> ContextFactory:
    return lambda: add(lm, v, 1.0, site, positions="prompt")


def _unit(v: Tensor) -> Tensor:
    return (v / v.norm().clamp_min(1e-12)).float()


def predict_control(
    lm: LoadedModel,
    harmful_train: Sequence[str],
    harmless_train: Sequence[str],
    harmful_val: Sequence[str],
    harmless_val: Sequence[str],
    harmful_test: Sequence[str],
    harmless_test: Sequence[str],
    judge: Judge,
    *,
    layers: Sequence[int] | None = None,
    selection_mode: str = "exhaustive",
    max_new_tokens: int = 32,
    batch_size: int = 32,
    seed: int = 0,
    l2: float = 1e-2,
    baseline: BaselineCache | None = None,
    progress: Any = None,
) -> DiscrepancyReport:
    """The predict-control table (module docstring). ``progress(n)`` is called once per finished layer."""
    chosen = list(range(lm.n_layers)) if layers is None else list(layers)
    cache = baseline if baseline is not None else BaselineCache()
    a_tr, b_tr = _acts(lm, harmful_train, chosen), _acts(lm, harmless_train, chosen)
    a_te, b_te = _acts(lm, harmful_test, chosen), _acts(lm, harmless_test, chosen)
    sel = rank_candidates(
        lm, harmful_train, harmless_train, harmful_val, harmless_val, layers=chosen, mode=selection_mode
    )
    vectors = candidate_directions(lm, harmful_train, harmless_train, chosen)
    y_tr = torch.cat([torch.ones(len(a_tr)), torch.zeros(len(b_tr))])
    y_te = torch.cat([torch.ones(len(a_te)), torch.zeros(len(b_te))])
    base_sets: dict[str, Sequence[str]] = {"harmful": list(harmful_test), "harmless": list(harmless_test)}
    base = run_arms(
        lm,
        [Arm("baseline", lm)],
        base_sets,
        judge,
        intervention="none",
        kl_set=None,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        baseline=cache,
    )
    base_harmful = base.arms["baseline"].refusal["harmful"]
    rows: list[LayerDiscrepancy] = []
    norms = [float((a_tr[:, i].mean(0) - b_tr[:, i].mean(0)).norm()) for i in range(len(chosen))]
    skipped = [la for la, nm in zip(chosen, norms, strict=True) if nm <= 1e-6 * max(norms)]
    for i, layer in enumerate(chosen):
        if layer in skipped:  # e.g. layer 0 at a template token: one embedding for every prompt
            continue
        dim = a_tr[:, i].mean(0) - b_tr[:, i].mean(0)
        probe = fit_logistic(torch.cat([a_tr[:, i], b_tr[:, i]]), y_tr, l2=l2).weight
        cands = [c for c in sel.candidates if c.layer == layer and c.exact and c.bypass == c.bypass]
        pick = min(cands, key=lambda c: c.bypass).position if cands else -1
        if float(vectors[(layer, pick)].norm()) <= 1e-6 * max(norms):
            pick = -1  # no exactly scored live candidate at this layer: the eoi:-1 difference in means
        units = {"probe": _unit(probe), "diff_means": _unit(dim), "selected": _unit(vectors[(layer, pick)])}
        units["random"] = _unit(random_like(units["diff_means"], seed + 1000 + layer))
        norm = float(dim.norm())
        x_te = torch.cat([a_te[:, i], b_te[:, i]]).float()
        aucs = {k: auc_from_ranks(x_te @ u, y_te) for k, u in units.items()}
        abl = run_arms(
            lm,
            [Arm(k, lm, _ablation(lm, u)) for k, u in units.items()],
            {"harmful": list(harmful_test)},
            judge,
            intervention="ablate",
            kl_set=None,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            baseline=cache,
        )
        site = Site(layer)
        ind = run_arms(
            lm,
            [Arm(k, lm, _addition(lm, u * norm, site)) for k, u in units.items()],
            {"harmless": list(harmless_test)},
            judge,
            intervention="add",
            kl_set=None,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            baseline=cache,
        )
        cos = {
            f"{p}|{q}": float(units[p] @ units[q])
            for p, q in (("probe", "diff_means"), ("probe", "selected"), ("diff_means", "selected"))
        }
        scores = {
            k: DirectionScore(
                aucs[k],
                dprime(x_te @ units[k], y_te),
                abl.arms[k].refusal["harmful"],
                ind.arms[k].refusal["harmless"],
            )
            for k in units
        }
        rows.append(LayerDiscrepancy(layer, pick, norm, cos, scores))
        if progress is not None:
            progress(1)
    b = base_harmful.rate or 0.0
    points = [(row.scores[n].dprime, row.control_effect(n, b)) for row in rows for n in DIRECTIONS]
    rho = spearman([p[0] for p in points], [p[1] for p in points]) if len(points) > 2 else None
    prov = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "judge": judge.name,
        "layers": chosen,
        "site": "resid_pre",
        "positions": "eoi:-1",
        "selection_mode": selection_mode,
        "skipped_layers": skipped,
        "selected_best": {"layer": sel.best.layer, "position": sel.best.position},
        "n": {
            "train": [len(harmful_train), len(harmless_train)],
            "val": [len(harmful_val), len(harmless_val)],
            "test": [len(harmful_test), len(harmless_test)],
        },
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "l2": l2,
        "safetyscope_version": __version__,
    }
    return DiscrepancyReport(
        rows, base_harmful, base.arms["baseline"].refusal["harmless"], rho, PAPER_CLAIM, prov
    )
