"""Judge a JSONL file of completions (``safetyscope judge --completions FILE.jsonl``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from safetyscope.data.jsonl import iter_jsonl
from safetyscope.errors import EvaluationError
from safetyscope.evaluation.verdict import LABELS, Judge

#: Fields every line must have.
REQUIRED_FIELDS = ("instruction", "completion")


def read_completions(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file whose lines are objects with string ``instruction`` and ``completion``.

    Blank lines are skipped. Raises :class:`EvaluationError` naming the file and line number for
    a missing file, invalid JSON, a non-object line, a missing or non-string field, or no records.
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"Completions file {path} does not exist.")
    records: list[dict[str, Any]] = []
    for number, record in iter_jsonl(path, EvaluationError):
        if not isinstance(record, dict):
            raise EvaluationError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}.")
        for key in REQUIRED_FIELDS:
            if key not in record:
                raise EvaluationError(f"{path}:{number}: missing field {key!r} (each line needs "
                                      f"{' and '.join(map(repr, REQUIRED_FIELDS))}).")
            if key == "completion" and record[key] is None:
                record[key] = ""
            if not isinstance(record[key], str):
                raise EvaluationError(f"{path}:{number}: field {key!r} must be a string, "
                                      f"got {type(record[key]).__name__}.")
        records.append(record)
    if not records:
        raise EvaluationError(f"Completions file {path} is empty: it has no JSON lines.")
    return records


def judge_file(path: str | Path, judge: Judge | None = None,
               labels: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Label every line of a completions JSONL file.

    Args:
        path: JSONL file; each line an object with ``instruction`` and ``completion`` (other
            fields are kept). A line's own ``label`` field (e.g. a human label) is kept as
            ``reference_label``.
        judge: the judge to use (default: the linear judge, ``get_judge("default")``).
        labels: name of a field holding reference labels (see :mod:`.judge_eval` for accepted
            values); the summary then carries an ``evaluation`` (agreement, kappa, confusion,
            per-class precision/recall with Wilson intervals). A line without the field is an
            error; a ``null`` value is skipped.

    Returns:
        ``(records, summary)``: one dict per line in input order, each with ``label``,
        ``score`` and ``reason`` added; and a summary with ``total``, ``counts`` per label,
        ``rates`` per label, the judge's name, and ``agreement`` with the reference labels when
        every line carries a valid one, and ``abstained`` when an ensemble abstained.
    """
    from safetyscope.evaluation.judge_eval import evaluate_labels, normalise_reference
    from safetyscope.evaluation.judges import get_judge
    from safetyscope.evaluation.model_judges import abstained

    judge = judge or get_judge("default")
    records = read_completions(path)
    refs: list[Any] = []
    if labels is not None:
        for number, record in enumerate(records, start=1):
            if labels not in record:
                raise EvaluationError(f"{path}: record {number} has no reference-label field {labels!r}.")
            try:
                normalise_reference(record[labels])  # fail before a slow judge runs
            except EvaluationError as exc:
                raise EvaluationError(f"{path}: record {number}: {exc}") from None
            refs.append(record[labels])
    verdicts = judge.label_many((r["instruction"], r["completion"]) for r in records)
    out: list[dict[str, Any]] = []
    for record, verdict in zip(records, verdicts, strict=True):
        row = dict(record)
        if "label" in row:
            row["reference_label"] = row.pop("label")
        row.update(verdict.to_dict())
        out.append(row)
    counts = Counter(v.label for v in verdicts)
    total = len(out)
    summary: dict[str, Any] = {
        "judge": getattr(judge, "name", type(judge).__name__),
        "total": total,
        "counts": {label: counts.get(label, 0) for label in LABELS},
        "rates": {label: counts.get(label, 0) / total for label in LABELS},
    }
    n_abstained = sum(abstained(v) for v in verdicts)
    if n_abstained:
        summary["abstained"] = n_abstained
    own = [r.get("reference_label") for r in out]
    if all(ref in LABELS for ref in own):
        summary["agreement"] = sum(r["label"] == r["reference_label"] for r in out) / total
    if labels is not None:
        ev = evaluate_labels([v.label for v in verdicts], refs, judge=summary["judge"],
                             provenance={"file": str(path), "labels_field": labels})
        summary["evaluation"] = ev.to_dict()
    return out, summary
