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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.hooks import _check_dim, _edit_input, _hooks, _layers
from safetyscope.model.loading import LoadedModel


@dataclass
class CastState:
    """What the condition hook decided for the sequences of the current generation."""

    steer: Tensor | None = None  # [batch] bool
    scores: Tensor | None = None  # [batch] cosine similarities
    history: list[Tensor] = field(default_factory=list)


def condition_scores(hidden: Tensor, condition: Tensor) -> Tensor:
    """Cosine similarity between each sequence's last-token hidden state and ``condition``."""
    last = hidden[:, -1].float()
    c = condition.to(last.device, torch.float32)
    return torch.nn.functional.cosine_similarity(last, c.unsqueeze(0), dim=-1)


@contextmanager
def cast(lm: LoadedModel, condition: Tensor, threshold: float, behavior: Tensor, scale: float,
         condition_layer: int, behavior_layers: Sequence[int] | int, above: bool = True) -> Iterator[CastState]:
    """Conditional steering; yields a :class:`CastState` recording each prompt pass's decisions.

    A forward pass with more than one token is treated as a prompt pass (decides); a
    one-token pass continues the current generation (reuses the decision).

    Raises:
        SafetyscopeError: a behaviour layer comes before the condition layer (the decision
            would not exist yet on the prompt pass), or dimensions do not match.
    """
    layers = _layers(lm, behavior_layers)
    _check_dim(lm, condition, "Condition vector")
    _check_dim(lm, behavior, "Behaviour vector")
    if min(layers) < condition_layer:
        raise SafetyscopeError(
            f"Behaviour layers {layers} start before the condition layer {condition_layer}; "
            "the condition must be read at or before the first steered layer."
        )
    state = CastState()

    def decide(h: Tensor) -> Tensor:
        if h.shape[1] > 1 or state.steer is None:
            state.scores = condition_scores(h, condition)
            state.steer = state.scores > threshold if above else state.scores < threshold
            state.history.append(state.steer.cpu())
        return h

    def steer(h: Tensor) -> Tensor:
        assert state.steer is not None
        gate = state.steer.to(device=h.device, dtype=h.dtype).view(-1, 1, 1)
        return h + gate * (scale * behavior).to(device=h.device, dtype=h.dtype)

    def register(handles: list[Any]) -> None:
        handles.append(_edit_input(lm.arch.layers[condition_layer], decide))
        for layer in layers:
            handles.append(_edit_input(lm.arch.layers[layer], steer))

    with _hooks(register):
        yield state


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
