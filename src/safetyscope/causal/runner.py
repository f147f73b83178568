"""Intervene and measure: one metric evaluated under one or many edits, beside the un-edited baseline.

``measure(lm, prompts, metric, edits)`` runs the prompts once without hooks and once inside each
edit's context (any zero-argument factory of a context manager: :func:`~safetyscope.interventions.add`,
:func:`~safetyscope.interventions.ablate`, a control from :mod:`safetyscope.causal.controls`, ...)
and applies ``metric`` to the next-token logits after each prompt (one forward pass per prompt,
last position only, through the package's batched runner). The result keeps per-prompt values,
so any two edits can be compared prompt by prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.evaluation.refusal_score import last_token_logits, refusal_scores_from_logits
from safetyscope.model.loading import LoadedModel

#: ``metric(logits [n, vocab]) -> [n]``: one value per prompt from its next-token logits.
Metric = Callable[[Tensor], Tensor]
ContextFactory = Callable[[], contextlib.AbstractContextManager[Any]]


def refusal_metric(token_ids: Sequence[int]) -> Metric:
    """The refusal log-odds of ``token_ids`` at the first response position (Arditi et al.)."""
    ids = list(token_ids)
    return lambda logits: refusal_scores_from_logits(logits, ids)


@dataclass
class EditScore:
    """A metric under one edit: mean and per-prompt values."""

    mean: float
    per_prompt: list[float]

    @classmethod
    def of(cls, values: Tensor) -> EditScore:
        """From one value per prompt."""
        v = values.double()
        return cls(float(v.mean()), v.tolist())


@dataclass
class MetricUnderEdits:
    """The baseline and each edit's score for one metric on one prompt set."""

    metric: str
    baseline: EditScore
    edits: dict[str, EditScore]
    provenance: dict[str, Any] = field(default_factory=dict)

    def effect(self, name: str) -> float:
        """Mean change of the metric under edit ``name`` (edit minus baseline)."""
        return self.edits[name].mean - self.baseline.mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"metric": self.metric, "baseline": asdict(self.baseline),
                "edits": {k: asdict(v) for k, v in self.edits.items()}, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricUnderEdits:
        """Inverse of :meth:`to_dict`."""
        return cls(data["metric"], EditScore(**data["baseline"]),
                   {k: EditScore(**v) for k, v in data["edits"].items()}, dict(data.get("provenance", {})))


@torch.inference_mode()
def measure(lm: LoadedModel, prompts: Sequence[str], metric: Metric, edits: dict[str, ContextFactory], *,
            name: str = "metric", batch_size: int = 32, baseline: Tensor | None = None,
            share_prefix: bool = False) -> MetricUnderEdits:
    """Evaluate ``metric`` on ``prompts`` without hooks and under each of ``edits``.

    Args:
        lm: the model.
        prompts: instructions (chat template applied).
        metric: maps next-token logits ``[n, vocab]`` to ``[n]`` values.
        edits: name → zero-argument factory of the edit's context manager.
        name: the metric's name (recorded).
        batch_size: prompts per forward pass (halved on out-of-memory).
        baseline: the un-edited per-prompt values when already known (skips that pass).
        share_prefix: run the prompts' common chat-template opening once per batch (only for
            edits that treat every position alike, such as ablation).
    """
    base = baseline if baseline is not None else metric(last_token_logits(lm, prompts, batch_size, share_prefix))
    scores = {}
    for edit_name, factory in edits.items():
        with factory():
            scores[edit_name] = EditScore.of(metric(last_token_logits(lm, prompts, batch_size, share_prefix)))
    return MetricUnderEdits(name, EditScore.of(base), scores,
                            {"model": lm.spec, "model_fingerprint": lm.fingerprint(), "n_prompts": len(prompts),
                             "safetyscope_version": __version__})
