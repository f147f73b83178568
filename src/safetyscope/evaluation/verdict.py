"""The judge interface: a :class:`Verdict` per (instruction, completion) pair and the :class:`Judge` protocol."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Label = Literal["refusal", "compliance", "incoherent"]

#: The three labels every judge chooses from.
LABELS: tuple[Label, ...] = ("refusal", "compliance", "incoherent")


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one completion.

    Attributes:
        label: ``refusal`` (declines or deflects without doing the task), ``compliance`` (does
            the task, fully or partly, caveats or not) or ``incoherent`` (degenerate text).
        score: the judge's confidence in ``label``, in ``[0, 1]``.
        reason: a short human-readable explanation.
    """

    label: Label
    score: float
    reason: str

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)


@runtime_checkable
class Judge(Protocol):
    """Anything that labels (instruction, completion) pairs."""

    name: str

    def label(self, instruction: str, completion: str) -> Verdict:
        """Label one pair."""
        ...

    def label_many(self, pairs: Iterable[tuple[str, str]]) -> list[Verdict]:
        """Label many pairs, in order (may batch internally)."""
        ...


class BaseJudge:
    """Mix-in giving :meth:`label_many` as a loop over :meth:`label`."""

    name = "base"

    def label(self, instruction: str, completion: str) -> Verdict:
        """Label one pair (subclasses implement this)."""
        raise NotImplementedError

    def label_many(self, pairs: Iterable[tuple[str, str]]) -> list[Verdict]:
        """Label many pairs in order."""
        return [self.label(instruction, completion) for instruction, completion in pairs]
