"""Precise CAST conditions: grid search of layer, vector, comparator and threshold by F1.

The condition of conditional activation steering (:mod:`.conditional`, Lee et al. 2024) decides
per prompt whether to steer. A threshold fitted to accuracy on the phrasings it was trained on
over-fires on new phrasings; this module instead

1. fits candidate condition vectors on a *fit* split, per layer, by three methods:
   ``mean_diff`` (difference of class means, as IBM's activation-steering library offers),
   ``pca_pairs`` (first principal component of pairwise-centred pairs: each positive is paired
   with a negative and both are centred on the pair's mean, then PCA; the IBM library's
   ``pca_pairwise``) and ``probe`` (L2 logistic regression);
2. chooses the comparator (``>`` or ``<``) and threshold that maximise F1 on a *validation*
   split whose phrasings are disjoint from the fit split (:func:`best_threshold`);
3. keeps the best rule per layer, and also tries "any fires" combinations of two layers (steer
   when any layer's rule fires), choosing the single rule or combination of highest validation
   F1 (ties: fewer layers).

Scores are projections of the mean-pooled ``resid_pre`` prompt activation, minus the class
midpoint, onto the unit condition vector.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.conditional import CastState, condition_scores, pool
from safetyscope.interventions.hooks import check_width, resolve_sites
from safetyscope.model.loading import LoadedModel

METHODS = ("mean_diff", "pca_pairs", "probe")


@dataclass(frozen=True)
class Rule:
    """One layer's condition: steer iff ``score(pool(h) - center, vector) > threshold`` (or ``<``)."""

    layer: int
    method: str
    vector: Tensor
    center: Tensor
    threshold: float
    above: bool
    f1: float
    precision: float
    recall: float

    def fires(self, pooled: Tensor) -> Tensor:
        """Boolean decision per row of pooled activations ``[n, d]``."""
        s = condition_scores(pooled, self.vector, self.center)
        return s > self.threshold if self.above else s < self.threshold

    def summary(self) -> dict[str, Any]:
        """JSON-able description (without tensors)."""
        return {
            "layer": self.layer,
            "method": self.method,
            "threshold": self.threshold,
            "comparator": ">" if self.above else "<",
            "val_f1": round(self.f1, 4),
            "val_precision": round(self.precision, 4),
            "val_recall": round(self.recall, 4),
        }


def prf(pred: Tensor, truth: Tensor) -> tuple[float, float, float]:
    """Precision, recall, F1 of boolean predictions (0 where undefined)."""
    tp = float((pred & truth).sum())
    p = tp / float(pred.sum()) if pred.any() else 0.0
    r = tp / float(truth.sum()) if truth.any() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def best_threshold(pos: Tensor, neg: Tensor) -> tuple[float, bool, float]:
    """``(threshold, above, f1)`` maximising F1 of "positive" over midpoints of the sorted scores."""
    if pos.numel() == 0 or neg.numel() == 0:
        raise SafetyscopeError("best_threshold needs at least one positive and one negative score.")
    scores = torch.cat([pos, neg]).double()
    truth = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).bool()
    v = torch.sort(scores).values
    cands = torch.cat([v[:1] - 1e-6, (v[1:] + v[:-1]) / 2, v[-1:] + 1e-6])
    gap = (cands.unsqueeze(1) - scores.unsqueeze(0)).abs().min(1).values  # distance to the nearest score
    best = (0.0, True, -1.0)
    for above in (True, False):
        pred = (
            (scores.unsqueeze(0) > cands.unsqueeze(1))
            if above
            else (scores.unsqueeze(0) < cands.unsqueeze(1))
        )
        tp = (pred & truth).sum(1).double()
        f1 = 2 * tp / (pred.sum(1).double() + truth.sum().double())
        top = f1.max()
        k = int(
            torch.argmax(torch.where(f1 >= top - 1e-12, gap, torch.full_like(gap, -1.0)))
        )  # ties: widest margin
        if float(f1[k]) > best[2] + 1e-12:
            best = (float(cands[k]), above, float(f1[k]))
    return best


def condition_vector(pos: Tensor, neg: Tensor, method: str, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(vector, center)`` separating pooled ``pos`` from ``neg`` (see the module docstring)."""
    pos, neg = pos.double(), neg.double()
    center = (pos.mean(0) + neg.mean(0)) / 2
    if method == "mean_diff":
        vec = pos.mean(0) - neg.mean(0)
    elif method == "pca_pairs":
        g = torch.Generator().manual_seed(seed)
        n = min(len(pos), len(neg))
        p = pos[torch.randperm(len(pos), generator=g)[:n]]
        q = neg[torch.randperm(len(neg), generator=g)[:n]]
        half = (p - q) / 2  # each pair centred on its mean: rows +half and -half
        vec = torch.linalg.svd(torch.cat([half, -half]), full_matrices=False).Vh[0]
        if float(((pos - center) @ vec).mean()) < 0:  # orient: positives project higher
            vec = -vec
    elif method == "probe":
        from safetyscope.directions.logistic import fit_logistic

        fit = fit_logistic(
            torch.cat([pos, neg]).float(), torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
        )
        vec = fit.weight.double()
        center = -float(fit.bias) * vec / vec.norm() ** 2
    else:
        raise SafetyscopeError(f"condition method must be one of {METHODS}, got {method!r}.")
    return vec.float(), center.float()


def pooled_activations(lm: LoadedModel, prompts: Sequence[str], layers: Sequence[int]) -> dict[int, Tensor]:
    """Mean over prompt tokens of ``resid_pre[layer]`` for each prompt: ``{layer: [n, d]}``."""
    from safetyscope.activations import collect

    sites = [Site(layer) for layer in layers]
    res = collect(lm, list(prompts), sites, "all", "none", progress=False)
    assert res.prompt_index is not None
    counts = torch.bincount(res.prompt_index, minlength=len(prompts)).unsqueeze(1).double()
    out = {}
    for site in sites:
        rows = res.rows[site.key].double()
        sums = torch.zeros(len(prompts), rows.shape[1], dtype=torch.float64).index_add_(
            0, res.prompt_index, rows
        )
        out[site.layer] = (sums / counts).float()
    return out


@dataclass(frozen=True)
class ConditionSearch:
    """The chosen condition (one rule, or several that steer when any fires) and the whole grid."""

    rules: tuple[Rule, ...]
    val_precision: float
    val_recall: float
    val_f1: float
    grid: list[dict[str, Any]] = field(default_factory=list)

    def fires(self, pooled: dict[int, Tensor]) -> Tensor:
        """Decision per prompt from ``{layer: pooled [n, d]}`` (any rule fires)."""
        out = None
        for rule in self.rules:
            f = rule.fires(pooled[rule.layer])
            out = f if out is None else out | f
        assert out is not None
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "rules": [r.summary() for r in self.rules],
            "val_precision": round(self.val_precision, 4),
            "val_recall": round(self.val_recall, 4),
            "val_f1": round(self.val_f1, 4),
            "grid": self.grid,
        }

    def steer(
        self, lm: LoadedModel, behavior: Tensor, scale: float, behavior_layers: Sequence[int] | int
    ) -> Any:
        """:func:`cast_any` with these rules."""
        return cast_any(lm, self.rules, behavior, scale, behavior_layers)


def search_condition(
    fit_pos: dict[int, Tensor],
    fit_neg: dict[int, Tensor],
    val_pos: dict[int, Tensor],
    val_neg: dict[int, Tensor],
    methods: Sequence[str] = METHODS,
    combine: int = 2,
    seed: int = 0,
) -> ConditionSearch:
    """Grid search (layers of the dicts x ``methods`` x comparator x threshold) by validation F1.

    Vectors are fitted on ``fit_*``; comparator and threshold on ``val_*`` (give it phrasings
    the fit split lacks). ``combine`` is the most layers an "any fires" combination may use.
    """
    layers = sorted(fit_pos)
    truth = torch.cat(
        [torch.ones(len(next(iter(val_pos.values())))), torch.zeros(len(next(iter(val_neg.values()))))]
    ).bool()
    grid, best_per_layer = [], {}
    for layer in layers:
        for method in methods:
            vec, center = condition_vector(fit_pos[layer], fit_neg[layer], method, seed)
            sp = condition_scores(val_pos[layer], vec, center)
            sn = condition_scores(val_neg[layer], vec, center)
            t, above, _ = best_threshold(sp, sn)
            pred = torch.cat([sp > t, sn > t]) if above else torch.cat([sp < t, sn < t])
            p, r, f = prf(pred, truth)
            rule = Rule(layer, method, vec, center, t, above, f, p, r)
            grid.append(rule.summary())
            if layer not in best_per_layer or f > best_per_layer[layer].f1:
                best_per_layer[layer] = rule
    val = {layer: torch.cat([val_pos[layer], val_neg[layer]]) for layer in layers}
    best: tuple[float, int, tuple[Rule, ...], float, float] | None = None
    for k in range(1, max(1, combine) + 1):
        for combo in itertools.combinations(layers, k):
            rules = tuple(best_per_layer[layer] for layer in combo)
            pred = ConditionSearch(rules, 0, 0, 0).fires(val)
            p, r, f = prf(pred, truth)
            if best is None or f > best[0] + 1e-12:
                best = (f, k, rules, p, r)
            if k > 1:
                grid.append(
                    {
                        "any_fires": list(combo),
                        "val_f1": round(f, 4),
                        "val_precision": round(p, 4),
                        "val_recall": round(r, 4),
                    }
                )
    assert best is not None
    return ConditionSearch(best[2], best[3], best[4], best[0], grid)


@contextmanager
def cast_any(
    lm: LoadedModel,
    rules: Sequence[Rule],
    behavior: Tensor,
    scale: float,
    behavior_layers: Sequence[int] | int,
) -> Iterator[CastState]:
    """CAST whose condition is "any rule fires" (each rule at its own layer, mean pooling).

    Decided on the prompt pass (more than one token), kept through generation; the prompt pass
    is steered at ``behavior_layers`` (all at or after the last condition layer).
    """
    if not rules:
        raise SafetyscopeError("cast_any needs at least one condition rule.")
    layers = [s.layer for s in resolve_sites(lm, behavior_layers, what="cast")]
    check_width(lm, behavior, "Behaviour vector")
    for rule in rules:
        check_width(lm, rule.vector, "Condition vector")
    last = max(r.layer for r in rules)
    if min(layers) < last:
        raise SafetyscopeError(
            f"Behaviour layers {layers} start before condition layer {last}; "
            "the condition must be read at or before the first steered layer."
        )
    state = CastState()
    masks: list[Tensor | None] = [None]
    fired: dict[int, Tensor] = {}

    def remember_mask(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        masks[0] = kwargs.get("attention_mask")

    by_layer: dict[int, list[Rule]] = {}
    for rule in rules:
        by_layer.setdefault(rule.layer, []).append(rule)

    def write(site: Site, h: Tensor) -> Tensor:
        if site.layer in by_layer and h.shape[1] > 1:
            pooled = pool(h, "mean", masks[0])
            for i, rule in enumerate(by_layer[site.layer]):
                fired[site.layer * 1000 + i] = rule.fires(pooled).cpu()
            if site.layer == last:
                state.steer = torch.stack(list(fired.values())).any(0)
                state.history.append(state.steer)
                fired.clear()
        if site.layer in layers and h.shape[1] > 1 and state.steer is not None:
            gate = state.steer.to(device=h.device, dtype=h.dtype).view(-1, 1, 1)
            return h + gate * (scale * behavior).to(device=h.device, dtype=h.dtype)
        return h

    sites = list(
        dict.fromkeys([Site(layer) for layer in sorted(by_layer)] + [Site(layer) for layer in layers])
    )
    handle = lm.model.register_forward_pre_hook(remember_mask, with_kwargs=True)
    try:
        with edit(lm.arch, sites, write):
            yield state
    finally:
        handle.remove()
