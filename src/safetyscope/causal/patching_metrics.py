"""Metrics of a patched run, read from next-token logits at the last prompt position.

* ``logit_diff``: ``logit(answer) − logit(wrong)`` (linear in the residual stream; Heimersheim &
  Nanda's recommended exploratory metric).
* ``kl``: ``KL(P_clean ‖ P_patched)`` of the next-token distribution, against the same prompt's
  clean run (0 for the clean run itself).
* ``refusal``: refusal log-odds ``log P_R − log(1 − P_R)`` over the refusal-start tokens
  (:mod:`safetyscope.evaluation.refusal_score`).

:func:`normalised_recovery` maps a value onto ``(patched − corrupted) / (clean − corrupted)``:
0 is the corrupted run, 1 the clean run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope.causal.patch_spec import PatchingError
from safetyscope.evaluation.refusal_score import refusal_scores_from_logits, refusal_token_ids

#: Metric names accepted by :func:`make_metric`.
METRICS: tuple[str, ...] = ("logit_diff", "kl", "refusal")


@dataclass(frozen=True)
class PatchMetric:
    """A metric over ``[rows, vocab]`` logits.

    Attributes:
        name: one of :data:`METRICS`.
        answer_id, wrong_id: token ids for ``logit_diff``.
        token_ids: refusal-start token ids for ``refusal``.
    """

    name: str
    answer_id: int | None = None
    wrong_id: int | None = None
    token_ids: tuple[int, ...] = field(default=())

    def score(self, logits: Float[Tensor, "rows vocab"],
              clean_logits: Float[Tensor, "rows vocab"] | None = None) -> Float[Tensor, " rows"]:
        """Per-row metric in float64 (``clean_logits``: each row's clean-run logits, needed for ``kl``)."""
        x = logits.double()
        if self.name == "logit_diff":
            return x[:, self.answer_id] - x[:, self.wrong_id]
        if self.name == "refusal":
            return refusal_scores_from_logits(x, self.token_ids).double()
        if clean_logits is None:
            raise PatchingError("The kl metric needs the clean run's logits.")
        lp = torch.log_softmax(clean_logits.double().to(x.device), -1)
        lq = torch.log_softmax(x, -1)
        return (lp.exp() * (lp - lq)).sum(-1)

    def to_dict(self) -> dict[str, object]:
        """JSON form (provenance)."""
        return {"name": self.name, "answer_id": self.answer_id, "wrong_id": self.wrong_id,
                "token_ids": list(self.token_ids)}


def _first_token(tokenizer: object, text: str, what: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    if not text or not ids:
        raise PatchingError(f"{what} {text!r} does not tokenize to any token; give a non-empty word.")
    return int(ids[0])


def make_metric(name: str | None, tokenizer: object, answer: str | None = None, wrong: str | None = None,
                refusal_starts: Sequence[str] | None = None) -> PatchMetric:
    """Build a metric; ``None`` picks ``logit_diff`` when ``answer`` is given, else ``kl``.

    ``answer``/``wrong`` are scored by their first token (as the model would start a response).
    """
    if name is None:
        name = "logit_diff" if answer is not None else "kl"
    if name not in METRICS:
        raise PatchingError(f"Unknown metric {name!r}; use one of {list(METRICS)}.")
    if name == "logit_diff":
        if answer is None or wrong is None:
            raise PatchingError("The logit_diff metric needs both an answer and a wrong token (--answer TEXT --wrong TEXT).")
        a, w = _first_token(tokenizer, answer, "answer"), _first_token(tokenizer, wrong, "wrong")
        if a == w:
            raise PatchingError(f"answer {answer!r} and wrong {wrong!r} start with the same token ({a}); "
                                "their logit difference is always 0.")
        return PatchMetric(name, answer_id=a, wrong_id=w)
    if name == "refusal":
        ids = refusal_token_ids(tokenizer) if refusal_starts is None else refusal_token_ids(tokenizer, refusal_starts)
        return PatchMetric(name, token_ids=tuple(ids))
    return PatchMetric(name)


def normalised_recovery(value: float, clean: float, corrupted: float, eps: float = 1e-9) -> float | None:
    """``(value − corrupted) / (clean − corrupted)``; ``None`` when clean and corrupted coincide."""
    gap = clean - corrupted
    if not math.isfinite(gap) or abs(gap) < eps:
        return None
    return (value - corrupted) / gap
