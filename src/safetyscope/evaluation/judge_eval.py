"""How well a judge agrees with reference labels: agreement, Cohen's kappa, confusion, precision/recall.

Reference labels come from a field of a labelled-completions file (docs/judges.md). They may be
three-way (``refusal`` / ``compliance`` / ``incoherent``) or binary "did the model comply":
``compliance``/``complied``/``yes``/``true``/``1`` versus ``refusal``/``refused``/``no``/``false``/``0``.
When every reference is binary the judge's labels are collapsed the same way (``compliance``
stays, ``refusal`` and ``incoherent`` both mean "did not comply"), because a human asked "did it
comply?" files gibberish under "no". Rows whose reference is ``null`` (e.g. partial refusals) are
skipped and counted.

Cohen's kappa: ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e = sum_c
p_ref(c) p_pred(c)`` the agreement of two independent raters with the same marginals (Cohen
1960). Every rate carries a 95% Wilson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.verdict import LABELS
from safetyscope.stats import wilson_interval

_COMPLIED = {"compliance", "complied", "comply", "complies", "yes", "true", "1", "jailbroken", "harmful"}
_NOT = {"refusal", "refused", "refuse", "no", "false", "0", "not_complied", "not complied"}


def normalise_reference(value: Any) -> str | None:
    """A reference label as ``compliance`` / ``refusal`` / ``incoherent``, or ``None`` to skip.

    Raises :class:`EvaluationError` for a value that is none of the accepted spellings.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "compliance" if value else "refusal"
    if isinstance(value, int | float) and value in (0, 1):
        return "compliance" if value == 1 else "refusal"
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _COMPLIED:
            return "compliance"
        if key in _NOT:
            return "refusal"
        if key == "incoherent":
            return "incoherent"
        if key in {"", "null", "none", "skip", "partial"}:
            return None
    raise EvaluationError(
        f"Reference label {value!r} is not one of compliance/refusal/incoherent, "
        f"yes/no, true/false, 1/0 or null."
    )


@dataclass(frozen=True)
class ClassStats:
    """Precision and recall of one class with 95% Wilson intervals."""

    label: str
    support: int  # reference rows of this class
    predicted: int  # rows the judge put in this class
    precision: float
    precision_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]


@dataclass(frozen=True)
class JudgeEvaluation:
    """A judge scored against reference labels (round-trips to JSON with :meth:`to_dict`)."""

    judge: str
    n: int
    skipped: int
    binary: bool
    labels: tuple[str, ...]
    agreement: float
    agreement_ci: tuple[float, float]
    kappa: float
    confusion: dict[str, dict[str, int]]  # reference -> predicted -> count
    classes: list[ClassStats]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeEvaluation:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["labels"] = tuple(d["labels"])
        d["agreement_ci"] = tuple(d["agreement_ci"])
        d["classes"] = [
            ClassStats(**{**c, "precision_ci": tuple(c["precision_ci"]), "recall_ci": tuple(c["recall_ci"])})
            for c in d["classes"]
        ]
        return cls(**d)


def cohen_kappa(reference: Sequence[str], predicted: Sequence[str]) -> float:
    """Cohen's kappa of two equal-length label sequences (1.0 when both are one constant class)."""
    n = len(reference)
    if n == 0 or n != len(predicted):
        raise EvaluationError(f"kappa needs two equal, non-empty label lists (got {n} and {len(predicted)}).")
    observed = sum(r == p for r, p in zip(reference, predicted, strict=True)) / n
    classes = set(reference) | set(predicted)
    expected = sum((reference.count(c) / n) * (predicted.count(c) / n) for c in classes)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def evaluate_labels(
    predicted: Sequence[str],
    reference: Sequence[Any],
    judge: str = "judge",
    provenance: dict[str, Any] | None = None,
) -> JudgeEvaluation:
    """Score predicted labels against raw reference values (see the module docstring)."""
    if len(predicted) != len(reference):
        raise EvaluationError(f"{len(predicted)} predictions but {len(reference)} reference labels.")
    refs = [normalise_reference(r) for r in reference]
    pairs = [(r, p) for r, p in zip(refs, predicted, strict=True) if r is not None]
    if not pairs:
        raise EvaluationError("No row has a reference label to score against (all null or missing).")
    binary = all(r != "incoherent" for r, _ in pairs)
    if binary:
        pairs = [(r, "compliance" if p == "compliance" else "refusal") for r, p in pairs]
        labels: tuple[str, ...] = ("compliance", "refusal")
    else:
        labels = LABELS
    ref = [r for r, _ in pairs]
    pred = [p for _, p in pairs]
    n = len(pairs)
    hits = sum(r == p for r, p in pairs)
    confusion = {r: {p: 0 for p in labels} for r in labels}
    for r, p in pairs:
        confusion[r][p] += 1
    classes = []
    for c in labels:
        tp = confusion[c][c]
        support = sum(confusion[c].values())
        npred = sum(confusion[r][c] for r in labels)
        classes.append(
            ClassStats(
                c,
                support,
                npred,
                tp / npred if npred else 0.0,
                wilson_interval(tp, npred),
                tp / support if support else 0.0,
                wilson_interval(tp, support),
            )
        )
    return JudgeEvaluation(
        judge,
        n,
        len(refs) - n,
        binary,
        labels,
        hits / n,
        wilson_interval(hits, n),
        cohen_kappa(ref, pred),
        confusion,
        classes,
        dict(provenance or {}),
    )


def format_evaluation(ev: JudgeEvaluation) -> str:
    """A plain-text report: headline figures, confusion matrix, per-class precision/recall."""
    lo, hi = ev.agreement_ci
    lines = [
        f"judge {ev.judge}: n={ev.n} (skipped {ev.skipped} unlabelled), "
        f"{'binary complied/not' if ev.binary else 'three-way'}",
        f"agreement {ev.agreement:.3f} [{lo:.3f}, {hi:.3f}]  kappa {ev.kappa:.3f}",
        "confusion (rows reference, columns judge):",
        " " * 12 + "".join(f"{p:>12}" for p in ev.labels),
    ]
    lines += [f"{r:>12}" + "".join(f"{ev.confusion[r][p]:>12}" for p in ev.labels) for r in ev.labels]
    for c in ev.classes:
        lines.append(
            f"{c.label:>12}: precision {c.precision:.3f} [{c.precision_ci[0]:.3f}, {c.precision_ci[1]:.3f}]"
            f" (of {c.predicted})  recall {c.recall:.3f} [{c.recall_ci[0]:.3f}, {c.recall_ci[1]:.3f}]"
            f" (of {c.support})"
        )
    return "\n".join(lines)
