"""Entropy-Lens: the entropy of the logit-lens distribution at every layer.

Ali et al. (2025, "Entropy-Lens: The Information Signature of Transformer Computations"):
decode each layer's residual with the logit lens (or a tuned lens) and take the Shannon entropy
of the next-token distribution,

    H_l = - Σ_t p_l(t) log p_l(t),      p_l = softmax(LogitLens(h_l))        (nats)

The profile ``(H_0, ..., H_{L-1})`` of a prompt says at which depth the model commits to a
prediction (entropy falls) and differs between kinds of input: the paper classifies task type
and correctness from profiles with a k-nearest-neighbour classifier. Here: the mean profile of
each prompt set with 95% intervals, and the leave-one-out k-NN accuracy of telling the sets
apart from their profiles, beside the same classifier on shuffled labels (the control).
``log |V|`` (the uniform distribution) is the ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.sites import Positions
from safetyscope.analysis.lens import Translator, apply_lens, residuals
from safetyscope.causal.controls import shuffled_labels
from safetyscope.data.prompts import PromptSet
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.stats import mean_interval, wilson_interval


def entropy(logits: Float[Tensor, "*batch vocab"]) -> Float[Tensor, "*batch"]:
    """Shannon entropy (nats) of ``softmax(logits)`` over the last axis, in float64."""
    logp = torch.log_softmax(logits.double(), -1)
    return -(logp.exp() * logp).sum(-1)


def entropy_rows(
    lm: LoadedModel,
    h: Float[Tensor, "rows layers d"],
    layers: Sequence[int],
    translator: Translator | None = None,
) -> Float[Tensor, "rows layers"]:
    """The lens entropy of every row at every layer (``h[:, i]`` read at ``layers[i]``)."""
    out = []
    with torch.no_grad():
        for i, layer in enumerate(layers):
            x = h[:, i] if translator is None else translator(layer, h[:, i].to(lm.device))
            out.append(entropy(apply_lens(lm, x)).cpu())
    return torch.stack(out, 1)


def knn_accuracy(x: Float[Tensor, "n f"], labels: Tensor, k: int = 3) -> float:
    """Leave-one-out k-NN accuracy (Euclidean; majority vote, ties to the nearest neighbour's label)."""
    n = x.shape[0]
    if n <= k:
        raise SafetyscopeError(f"k-NN needs more than k={k} profiles, got {n}.")
    dist = torch.cdist(x.double(), x.double())
    dist.fill_diagonal_(float("inf"))
    nn_idx = dist.topk(k, largest=False).indices
    correct = 0
    for i in range(n):
        votes = labels[nn_idx[i]].tolist()
        counts = {lab: votes.count(lab) for lab in votes}
        best = max(counts.values())
        pred = next(v for v in votes if counts[v] == best)  # nearest among the tied labels
        correct += int(pred == int(labels[i]))
    return correct / n


@dataclass
class EntropyLayer:
    """Mean lens entropy of one prompt set at one layer, its 95% interval and SD (nats)."""

    layer: int
    mean: float
    low: float
    high: float
    sd: float


@dataclass
class EntropyReport:
    """Entropy profiles by prompt set, the k-NN separability of the sets and its shuffled-label control."""

    lens: str
    layers: list[int]
    profiles: dict[str, list[EntropyLayer]]
    n: dict[str, int]
    max_entropy: float
    positions: str
    knn: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EntropyReport:
        """Inverse of :meth:`to_dict`."""
        profiles = {k: [EntropyLayer(**x) for x in v] for k, v in d["profiles"].items()}
        return cls(
            d["lens"],
            d["layers"],
            profiles,
            d["n"],
            d["max_entropy"],
            d["positions"],
            d.get("knn", {}),
            d.get("provenance", {}),
        )

    def figure(self) -> dict[str, Any]:
        """A ``curves`` spec: mean entropy by layer per set (95% bands), ``log |V|`` as the baseline."""
        series = [
            {
                "label": name,
                "y": [x.mean for x in prof],
                "low": [x.low for x in prof],
                "high": [x.high for x in prof],
                "role": "effect",
            }
            for name, prof in self.profiles.items()
        ]
        series.append(
            {"label": "log |V| (uniform)", "y": [self.max_entropy] * len(self.layers), "role": "baseline"}
        )
        cap = ""
        if self.knn:
            cap = (
                f"{self.knn['k']}-NN accuracy of the sets from their profiles {self.knn['accuracy']:.2f} "
                f"[{self.knn['ci'][0]:.2f}, {self.knn['ci'][1]:.2f}] vs shuffled labels {self.knn['control']:.2f}"
            )
        return {
            "kind": "curves",
            "x": self.layers,
            "series": series,
            "xlabel": "layer",
            "ylabel": "entropy (nats)",
            "title": f"Entropy-Lens ({self.lens} lens, {self.positions})",
            "caption": cap,
        }


def entropy_profile(
    lm: LoadedModel,
    prompt_sets: Mapping[str, PromptSet | Sequence[str]],
    *,
    layers: Sequence[int] | None = None,
    positions: Positions | str = "last",
    translator: Translator | None = None,
    lens_name: str = "logit",
    k: int = 3,
    seed: int = 0,
) -> EntropyReport:
    """Entropy profile of each prompt set; with two or more sets, their k-NN separability and its control.

    Args:
        lm: the model.
        prompt_sets: ``{name: prompts}`` (chat-formatted like every prompt set).
        layers: blocks to read (default all).
        positions: where to read (``last``: the token that predicts the response; ``all``: every token
            but BOS, each row its own profile).
        translator: a tuned lens (``f(layer, h)``); ``None`` for the logit lens.
        k: neighbours of the k-NN classifier; seed: seeds the shuffled-label control.
    """
    if not prompt_sets:
        raise SafetyscopeError("entropy_profile: no prompt sets given.")
    layer_list: list[int] = []
    per_set: dict[str, Tensor] = {}
    for name, prompts in prompt_sets.items():
        h, layer_list = residuals(lm, prompts, layers, positions, skip_first=True)
        per_set[name] = entropy_rows(lm, h, layer_list, translator)
    profiles = {}
    for name, ent in per_set.items():
        prof = []
        for j, layer in enumerate(layer_list):
            col = [float(v) for v in ent[:, j]]
            lo, hi = mean_interval(col)
            sd = float(ent[:, j].std()) if len(col) > 1 else 0.0
            prof.append(EntropyLayer(layer, sum(col) / len(col), lo, hi, sd))
        profiles[name] = prof
    knn: dict[str, Any] = {}
    if len(per_set) >= 2:
        x = torch.cat(list(per_set.values()))
        y = torch.cat([torch.full((len(v),), i) for i, v in enumerate(per_set.values())])
        if x.shape[0] > k:
            acc = knn_accuracy(x, y, k)
            ctrl = [knn_accuracy(x, shuffled_labels(y, seed + s), k) for s in range(5)]
            knn = {
                "k": k,
                "accuracy": acc,
                "ci": list(wilson_interval(round(acc * len(y)), len(y))),
                "control": sum(ctrl) / len(ctrl),
                "control_runs": ctrl,
                "n": len(y),
                "chance": max(len(v) for v in per_set.values()) / len(y),
            }
    pos = positions if isinstance(positions, str) else positions.key
    prov = {
        "model_fingerprint": lm.fingerprint(),
        "seed": seed,
        "safetyscope_version": __version__,
        "prompt_sets": {
            n: (p.name if isinstance(p, PromptSet) else f"{len(p)} prompts") for n, p in prompt_sets.items()
        },
    }
    return EntropyReport(
        lens_name,
        layer_list,
        profiles,
        {n: int(v.shape[0]) for n, v in per_set.items()},
        math.log(lm.vocab_size),
        pos,
        knn,
        prov,
    )
