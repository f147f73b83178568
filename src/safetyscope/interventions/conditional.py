"""Conditional activation steering (CAST, Lee et al. 2024): steer only the prompts that match a condition.

On the prompt pass, each sequence's hidden state at ``condition_layer`` at the last prompt
token (the end-of-instruction token, always a real token under left padding) is compared
with a condition vector; sequences whose cosine similarity
exceeds ``threshold`` (or falls below it, with ``above=False``) are steered by adding
``scale · behavior_vector`` at the behaviour layers, on the prompt and on every generated
token. The decision is made once per sequence and kept for the whole generation.
:func:`fit_threshold` picks the threshold on a validation split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.directions.checks import check_scalar, check_vector
from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.hooks import check_width, resolve_sites
from safetyscope.model.loading import LoadedModel


@dataclass
class CastState:
    """What the condition hook decided for the sequences of the current generation."""

    steer: Tensor | None = None  # [batch] bool
    scores: Tensor | None = None  # [batch] cosine similarities
    history: list[Tensor] = field(default_factory=list)


def pool(hidden: Tensor, pooling: str, mask: Tensor | None = None) -> Tensor:
    """``[batch, pos, d] → [batch, d]``: the last token, or the mean over real (mask = 1) tokens."""
    if pooling == "last":
        return hidden[:, -1].float()
    if pooling != "mean":
        raise SafetyscopeError(f"pooling must be 'last' or 'mean', got {pooling!r}.")
    h = hidden.float()
    if mask is None or mask.shape[:2] != h.shape[:2]:
        return h.mean(1)
    m = mask.to(h.device, h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1)


def condition_scores(pooled: Tensor, condition: Tensor, center: Tensor | None = None,
                     score: str = "projection") -> Tensor:
    """Score pooled hidden states ``[batch, d]`` (minus ``center``) against ``condition``.

    ``projection``: signed length along the unit condition vector (a linear classifier's
    margin); ``cosine``: cosine similarity, as in the CAST paper.
    """
    x = pooled.float()
    if center is not None:
        x = x - center.to(x.device, torch.float32)
    c = condition.to(x.device, torch.float32)
    if score == "projection":
        return x @ (c / c.norm())
    if score == "cosine":
        return torch.nn.functional.cosine_similarity(x, c.unsqueeze(0), dim=-1)
    raise SafetyscopeError(f"score must be 'projection' or 'cosine', got {score!r}.")


@contextmanager
def cast(lm: LoadedModel, condition: Tensor, threshold: float, behavior: Tensor, scale: float,
         condition_layer: int, behavior_layers: Sequence[int] | int, above: bool = True,
         center: Tensor | None = None, pooling: str = "last", score: str = "projection",
         steer_generated: bool = False) -> Iterator[CastState]:
    """Conditional steering; yields a :class:`CastState` recording each prompt pass's decisions.

    A forward pass with more than one token is treated as a prompt pass (decides); a
    one-token pass continues the current generation (reuses the decision). ``pooling`` reads
    the last prompt token or the mean over the prompt's real tokens (the attention mask is
    taken from the model call); ``center`` is subtracted before the similarity (e.g. the
    midpoint of the two class means); ``score`` is ``projection`` or ``cosine``. By default
    only the prompt pass is steered (generated tokens read the steered prompt through the KV
    cache); ``steer_generated=True`` also adds the vector at every generated token.

    Raises:
        SafetyscopeError: a behaviour layer comes before the condition layer (the decision
            would not exist yet on the prompt pass), or dimensions do not match.
    """
    layers = [s.layer for s in resolve_sites(lm, behavior_layers, what="cast")]
    check_width(lm, condition, "Condition vector")
    check_width(lm, behavior, "Behaviour vector")
    check_vector(condition, "condition vector")
    check_vector(behavior, "behaviour vector", nonzero=False)  # zero: record decisions without steering
    threshold, scale = check_scalar(threshold, "threshold"), check_scalar(scale, "scale")
    resolve_sites(lm, condition_layer, what="cast condition")
    if min(layers) < condition_layer:
        raise SafetyscopeError(
            f"Behaviour layers {layers} start before the condition layer {condition_layer}; "
            "the condition must be read at or before the first steered layer."
        )
    state = CastState()
    masks: list[Tensor | None] = [None]

    def remember_mask(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        masks[0] = kwargs.get("attention_mask")

    def decide(h: Tensor) -> Tensor:
        if h.shape[1] > 1 or state.steer is None:
            state.scores = condition_scores(pool(h, pooling, masks[0]), condition, center, score)
            state.steer = state.scores > threshold if above else state.scores < threshold
            state.history.append(state.steer.cpu())
        return h

    def steer(h: Tensor) -> Tensor:
        assert state.steer is not None
        if h.shape[1] == 1 and not steer_generated:
            return h
        gate = state.steer.to(device=h.device, dtype=h.dtype).view(-1, 1, 1)
        return h + gate * (scale * behavior).to(device=h.device, dtype=h.dtype)

    condition_site = Site(condition_layer)

    def write(site: Site, h: Tensor) -> Tensor:
        if site == condition_site:  # hooks at one site run in order: decide first, then steer
            h = decide(h)
        return steer(h) if site.layer in layers else h

    handle = lm.model.register_forward_pre_hook(remember_mask, with_kwargs=True)  # reads, never writes
    try:
        with edit(lm.arch, list(dict.fromkeys([condition_site] + [Site(layer) for layer in layers])), write):
            yield state
    finally:
        handle.remove()


@dataclass(frozen=True)
class Threshold:
    """A fitted CAST threshold and its validation accuracy."""

    threshold: float
    above: bool
    accuracy: float


def fit_threshold(positive: Tensor, negative: Tensor) -> Threshold:
    """Threshold on condition scores that best separates ``positive`` (to steer) from ``negative``.

    Scans midpoints between sorted scores; ties prefer the larger margin.
    """
    if positive.numel() == 0 or negative.numel() == 0:
        raise SafetyscopeError("fit_threshold needs at least one positive and one negative score.")
    scores = torch.cat([positive, negative]).double()
    labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)]).bool()
    values = torch.sort(scores).values
    candidates = torch.cat([values[:1] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-6])
    best = Threshold(0.0, True, -1.0)
    for above in (True, False):
        for t in candidates.tolist():
            pred = scores > t if above else scores < t
            acc = (pred == labels).double().mean().item()
            if acc > best.accuracy:
                best = Threshold(float(t), above, acc)
    return best


@dataclass(frozen=True)
class Condition:
    """A fitted CAST condition: vector, centre, layer, pooling and threshold (with validation accuracy)."""

    vector: Tensor
    center: Tensor
    layer: int
    pooling: str
    threshold: Threshold

    def steer(self, lm: LoadedModel, behavior: Tensor, scale: float,
              behavior_layers: Sequence[int] | int) -> contextlib.AbstractContextManager[CastState]:
        """:func:`cast` with this condition."""
        return cast(lm, self.vector, self.threshold.threshold, behavior, scale, self.layer, behavior_layers,
                    self.threshold.above, center=self.center, pooling=self.pooling)


def fit_condition(lm: LoadedModel, positive_train: Sequence[str], negative_train: Sequence[str],
                  positive_val: Sequence[str], negative_val: Sequence[str], layer: int,
                  pooling: str = "mean", method: str = "probe") -> Condition:
    """Fit a CAST condition on pooled ``resid_pre[layer]`` activations.

    ``method="probe"``: an L2 logistic regression (positive vs negative); the condition vector
    is its weight and the centre puts its decision boundary at score 0. ``method="mean_diff"``:
    the difference of class means, centred at their midpoint. The threshold on the projection
    score is then fitted on the validation split with :func:`fit_threshold`.
    """
    from safetyscope.activations import Site, collect
    from safetyscope.directions.logistic import fit_logistic

    site = Site(layer)

    def pooled(prompts: Sequence[str]) -> Tensor:
        res = collect(lm, prompts, site, "last" if pooling == "last" else "all", "none", progress=False)
        assert res.prompt_index is not None
        rows = res.rows[site.key].double()
        sums = torch.zeros(len(prompts), rows.shape[1], dtype=torch.float64).index_add_(0, res.prompt_index, rows)
        return (sums / torch.bincount(res.prompt_index, minlength=len(prompts)).unsqueeze(1)).float()

    pos, neg = pooled(positive_train), pooled(negative_train)
    if method == "probe":
        fit = fit_logistic(torch.cat([pos, neg]), torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]))
        vector = fit.weight.float()
        center = -fit.bias * vector / vector.norm() ** 2
    elif method == "mean_diff":
        vector, center = pos.mean(0) - neg.mean(0), (pos.mean(0) + neg.mean(0)) / 2
    else:
        raise SafetyscopeError(f"method must be 'probe' or 'mean_diff', got {method!r}.")

    def scores(prompts: Sequence[str]) -> Tensor:
        return condition_scores(pooled(prompts), vector, center)

    return Condition(vector, center, layer, pooling, fit_threshold(scores(positive_val), scores(negative_val)))
