"""Layer-wise linear probes with a shuffled-label control (Alain & Bengio 2017; Hewitt & Liang 2019).

At each layer an L2-regularised logistic regression (:func:`safetyscope.directions.fit_logistic`)
is trained on a stratified, seeded split of harmful (label 1) and harmless (label 0) rows and
scored on the held-out rows: accuracy with a 95% Wilson interval and ROC AUC (from ranks,
Mann-Whitney). The control permutes all labels, trains the same probe on the same training
rows with the permuted labels and scores it against the permuted test labels (the control
task); ``selectivity = accuracy - control accuracy``. Scoring the control against the *true*
test labels instead is unstable when one direction dominates: the shuffled probe then picks
that direction with a random sign and scores near 0 or near 1.
High accuracy with low selectivity means the probe memorises rather than reads a linear
feature. High selectivity still does not show the model *uses* the feature: that needs a
causal intervention.

The classifier is pluggable: ``fit`` maps training rows and labels to a scoring function (a
:data:`Fitter`); the default is the logistic probe. :mod:`safetyscope.analysis.nonlinear_probes`
supplies truncated-polynomial and MLP fitters, scored by the same split, controls and metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.directions.checks import DirectionError, check_pair
from safetyscope.directions.logistic import fit_logistic
from safetyscope.stats import wilson_interval

#: ``fit(x_train, y_train) -> score``: a trained classifier as a function from rows to logits
#: (positive = harmful). The default :func:`linear_fitter` wraps :func:`fit_logistic`.
Fitter = Callable[[Tensor, Tensor], Callable[[Tensor], Tensor]]


def linear_fitter(l2: float = 1e-2) -> Fitter:
    """The logistic probe as a :data:`Fitter`."""

    def fit(x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        return fit_logistic(x, y, l2=l2).decision

    return fit


def auc_from_ranks(scores: Float[Tensor, " n"], labels: Tensor) -> float:
    """ROC AUC as the Mann-Whitney statistic: ``(R₊ - n₊(n₊+1)/2) / (n₊ n₋)`` with average ranks for ties."""
    s = scores.detach().to(torch.float64).flatten()
    y = labels.detach().flatten().bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DirectionError("AUC needs scores of both classes.")
    order = torch.argsort(s, stable=True)
    _, counts = torch.unique_consecutive(s[order], return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)  # 1-based rank of each tie group's last member
    group_rank = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(s)
    ranks[order] = torch.repeat_interleave(group_rank, counts)
    return (float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def stratified_split(n_pos: int, n_neg: int, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Train and test row indices over ``[positives..., negatives...]``, stratified by class."""
    if not 0.0 < test_fraction < 1.0:
        raise DirectionError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for offset, n in ((0, n_pos), (n_pos, n_neg)):
        perm = torch.randperm(n, generator=gen) + offset
        k = round(n * test_fraction)
        if k < 1 or n - k < 1:
            raise DirectionError(f"A class of {n} rows cannot be split with test_fraction={test_fraction}.")
        test.append(perm[:k])
        train.append(perm[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


@dataclass
class LayerProbe:
    """Probe results at one layer (accuracies on held-out rows, 95% Wilson intervals)."""

    layer: int | None
    accuracy: float
    accuracy_ci: tuple[float, float]
    auc: float
    control_accuracy: float
    control_ci: tuple[float, float]
    control_auc: float
    selectivity: float
    train_accuracy: float
    n_train: int
    n_test: int


@dataclass
class ProbeReport:
    """Layer-wise probe results with the split and fit settings, serialisable to JSON."""

    layers: list[LayerProbe]
    test_fraction: float
    seed: int
    l2: float
    n_controls: int
    provenance: dict[str, Any] = field(default_factory=dict)
    method: str = "linear"

    def best(self) -> LayerProbe:
        """The layer with the highest held-out accuracy (then selectivity, then the earliest)."""
        return max(self.layers, key=lambda p: (p.accuracy, p.selectivity, -(p.layer or 0)))

    def at(self, layer: int | None) -> LayerProbe:
        """The result at ``layer``."""
        for p in self.layers:
            if p.layer == layer:
                return p
        raise KeyError(f"No layer {layer}; layers: {[p.layer for p in self.layers]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeReport:
        """Inverse of :meth:`to_dict`."""
        layers = [LayerProbe(**(p | {"accuracy_ci": tuple(p["accuracy_ci"]), "control_ci": tuple(p["control_ci"])}))
                  for p in data["layers"]]
        return cls(layers, data["test_fraction"], data["seed"], data["l2"], data["n_controls"],
                   data.get("provenance", {}), data.get("method", "linear"))

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProbeReport:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _probe_layer(x: Tensor, y: Tensor, train: Tensor, test: Tensor, layer: int | None, fit: Fitter,
                 controls: Sequence[Tensor]) -> LayerProbe:
    score = fit(x[train], y[train])
    scores = score(x[test])
    train_acc = float(((score(x[train]) > 0) == y[train].bool()).double().mean())
    correct = int(((scores > 0) == y[test].bool()).sum())
    n_test = int(test.numel())
    c_correct, c_aucs = 0, []
    for y_ctrl in controls:
        c_scores = fit(x[train], y_ctrl[train])(x[test])
        c_correct += int(((c_scores > 0) == y_ctrl[test].bool()).sum())
        c_aucs.append(auc_from_ranks(c_scores, y_ctrl[test]))
    acc, c_acc = correct / n_test, c_correct / (n_test * len(controls))
    return LayerProbe(
        layer=layer, accuracy=acc, accuracy_ci=wilson_interval(correct, n_test),
        auc=auc_from_ranks(scores, y[test]), control_accuracy=c_acc,
        control_ci=wilson_interval(c_correct, n_test * len(controls)), control_auc=sum(c_aucs) / len(controls),
        selectivity=acc - c_acc, train_accuracy=train_acc, n_train=int(train.numel()), n_test=n_test,
    )


def shuffled_label_sets(y: Tensor, train: Tensor, test: Tensor, n: int, gen: torch.Generator) -> list[Tensor]:
    """``n`` permutations of the labels; each must leave both classes in train and in test."""
    out: list[Tensor] = []
    while len(out) < n:
        y_ctrl = y[torch.randperm(y.numel(), generator=gen)]
        if all(0 < int(y_ctrl[idx].sum()) < idx.numel() for idx in (train, test)):
            out.append(y_ctrl)
    return out


def probe_layers(
    harmful: Float[Tensor, "n *layers d"],
    harmless: Float[Tensor, "m *layers d"],
    *,
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    l2: float = 1e-2,
    n_controls: int = 5,
    provenance: dict[str, Any] | None = None,
    fit: Fitter | None = None,
    method: str = "linear",
) -> ProbeReport:
    """Train and score a harmful-vs-harmless probe at every layer, with a shuffled-label control.

    Args:
        harmful, harmless: ``[n, d]`` or ``[n, layers, d]`` activations (need not be paired).
        layers: labels of the layer axis (default ``0..L-1``).
        test_fraction: share of each class held out for scoring.
        seed: seeds the split and the label shuffles (same split at every layer).
        l2: logistic-regression regularisation (standardised units).
        n_controls: shuffled-label probes per layer (the same label permutations at every
            layer); the control accuracy pools their test predictions (its Wilson interval
            counts ``n_test * n_controls`` trials).
        provenance: upstream provenance to record.
        fit: the classifier (a :data:`Fitter`; default the logistic probe with ``l2``).
        method: the classifier's name, recorded in the report.
    """
    if n_controls < 1:
        raise DirectionError(f"n_controls must be >= 1, got {n_controls}.")
    a, b = check_pair(harmful, harmless)
    a3, b3 = (a[:, None], b[:, None]) if a.ndim == 2 else (a, b)
    labels: list[int | None] = ([None] if a.ndim == 2 else list(range(a3.shape[1]))) if layers is None else list(layers)
    if len(labels) != a3.shape[1]:
        raise DirectionError(f"{len(labels)} layer labels for {a3.shape[1]} layers.")
    train, test = stratified_split(a3.shape[0], b3.shape[0], test_fraction, seed)
    y = torch.cat([torch.ones(a3.shape[0]), torch.zeros(b3.shape[0])])
    controls = shuffled_label_sets(y, train, test, n_controls, torch.Generator().manual_seed(seed + 1))
    fitter = fit if fit is not None else linear_fitter(l2)
    results = [
        _probe_layer(torch.cat([a3[:, i], b3[:, i]]), y, train, test, layer, fitter, controls)
        for i, layer in enumerate(labels)
    ]
    prov = dict(provenance or {}, n_harmful=a3.shape[0], n_harmless=b3.shape[0], d=a3.shape[-1],
                safetyscope_version=__version__)
    return ProbeReport(results, test_fraction, seed, l2, n_controls, prov, method)
