"""Fidelity: how close the target's completions stay to its true ones when its layer-M
activations come from the source through the map, against the mean-ablation baseline.

The post scores fidelity with an LLM judge (1–5). Here, per prompt and arm (``mapped``,
``mean``), against the true completion: **exact match** (a Wilson rate), token-level
**ROUGE-L F1** (longest common subsequence of token ids; mean with a standard error), the share
of prompts where the mapped completion's ROUGE-L beats the mean-ablated one's (a Wilson rate),
and, when a judge is given (the organism judge or any ``safetyscope judge``), **label agreement**
(the completion gets the same label as the true one; a Wilson rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from safetyscope.evaluation.metrics import Rate


def lcs_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common subsequence (O(len a · len b))."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: Sequence[int], ref: Sequence[int]) -> float:
    """ROUGE-L F1 of two token sequences (1.0 when both are empty)."""
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    lcs = lcs_len(pred, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 2 * p * r / (p + r)


def _mean_se(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(xs) / n
    var = sum((x - m) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return m, math.sqrt(var / n)


@dataclass
class ArmFidelity:
    """Fidelity of one arm against the true completions."""

    exact_match: Rate
    rouge_l: float
    rouge_l_se: float
    label_agreement: Rate | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["exact_match"] = self.exact_match.to_dict()
        d["label_agreement"] = self.label_agreement.to_dict() if self.label_agreement else None
        return d


@dataclass
class Fidelity:
    """Mapped vs mean-ablated fidelity, and how often mapped beats mean (ROUGE-L, ties count as no)."""

    mapped: ArmFidelity
    mean_ablated: ArmFidelity
    mapped_beats_mean: Rate
    n: int
    samples: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "mapped": self.mapped.to_dict(),
            "mean_ablated": self.mean_ablated.to_dict(),
            "mapped_beats_mean": self.mapped_beats_mean.to_dict(),
            "n": self.n,
            "samples": self.samples,
        }


def fidelity(
    prompts: Sequence[str],
    true: Sequence[Sequence[int]],
    mapped: Sequence[Sequence[int]],
    mean: Sequence[Sequence[int]],
    decode: Callable[[Sequence[int]], str],
    label: Callable[[str, str], str] | None = None,
    n_samples: int = 3,
) -> Fidelity:
    """Score mapped and mean-ablated completions (token ids) against the true ones."""

    def arm(comps: Sequence[Sequence[int]]) -> tuple[ArmFidelity, list[float]]:
        rl = [rouge_l(c, t) for c, t in zip(comps, true, strict=True)]
        m, se = _mean_se(rl)
        agree = None
        if label is not None:
            agree = Rate.from_flags(
                label(p, decode(c)) == label(p, decode(t))
                for p, c, t in zip(prompts, comps, true, strict=True)
            )
        exact = Rate.from_flags(list(c) == list(t) for c, t in zip(comps, true, strict=True))
        return ArmFidelity(exact, m, se, agree), rl

    fm, rm = arm(mapped)
    fa, ra = arm(mean)
    samples = [
        {"prompt": p, "true": decode(t), "mapped": decode(c), "mean_ablated": decode(a)}
        for p, t, c, a in list(zip(prompts, true, mapped, mean, strict=True))[:n_samples]
    ]
    return Fidelity(fm, fa, Rate.from_flags(x > y for x, y in zip(rm, ra, strict=True)), len(true), samples)
