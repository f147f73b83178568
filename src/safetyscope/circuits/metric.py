"""Differentiable metrics of a pair of runs, read from next-token logits at the last position.

* ``top`` (the default): per pair, ``logit(clean top token) − logit(corrupted top token)``, the
  two tokens taken from the un-patched clean and corrupted runs (a logit difference, linear in the
  residual stream);
* ``logit_diff``: one fixed answer and wrong token for every pair;
* ``refusal``: refusal log-odds over the refusal-start tokens (Arditi et al.).

``kl`` is not offered: its gradient vanishes at the clean run, so first-order attribution is blind to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from safetyscope.causal.patch_spec import PatchingError
from safetyscope.causal.patching_metrics import PatchMetric, make_metric

#: Metric names :func:`circuit_metric` accepts.
CIRCUIT_METRICS: tuple[str, ...] = ("top", "logit_diff", "refusal")


@dataclass(frozen=True)
class CircuitMetric:
    """A per-row metric; ``pair_answers`` holds each pair's (answer, wrong) ids for ``top``."""

    name: str
    base: PatchMetric | None = None
    pair_answers: tuple[tuple[int, int], ...] = field(default=())

    def score(self, logits: Tensor, pairs: Sequence[int]) -> Tensor:
        """Metric of each row (``pairs[i]``: the pair row ``i`` belongs to), differentiable, float64."""
        if self.name == "top":
            ids = torch.tensor([self.pair_answers[p] for p in pairs], device=logits.device)
            x = logits.double()
            return x.gather(1, ids[:, :1])[:, 0] - x.gather(1, ids[:, 1:])[:, 0]
        assert self.base is not None
        return self.base.score(logits)

    def to_dict(self) -> dict[str, object]:
        """JSON form (provenance)."""
        out: dict[str, object] = {"name": self.name}
        if self.base is not None:
            out.update(self.base.to_dict())
        if self.pair_answers:
            out["pair_answers"] = [list(p) for p in self.pair_answers]
        return out


def circuit_metric(
    name: str | None,
    tokenizer: object,
    *,
    clean_logits: Tensor | None = None,
    corrupt_logits: Tensor | None = None,
    answer: str | None = None,
    wrong: str | None = None,
    refusal_starts: Sequence[str] | None = None,
) -> CircuitMetric:
    """Build a metric. ``top`` needs the clean and corrupted runs' last-token logits (one row per pair)."""
    name = name or ("logit_diff" if answer is not None else "top")
    if name not in CIRCUIT_METRICS:
        raise PatchingError(
            f"Unknown attribution metric {name!r}; use one of {list(CIRCUIT_METRICS)} "
            "(kl has zero gradient at the clean run)."
        )
    if name == "top":
        if clean_logits is None or corrupt_logits is None:
            raise PatchingError("The top metric needs the clean and corrupted runs' logits.")
        a, w = clean_logits.argmax(-1).tolist(), corrupt_logits.argmax(-1).tolist()
        if all(x == y for x, y in zip(a, w, strict=True)):
            raise PatchingError(
                "Every pair's clean and corrupted runs predict the same top token, so the default "
                "metric is 0 everywhere; give --metric logit_diff --answer/--wrong or --metric refusal."
            )
        return CircuitMetric("top", pair_answers=tuple(zip(a, w, strict=True)))
    return CircuitMetric(name, base=make_metric(name, tokenizer, answer, wrong, refusal_starts))
