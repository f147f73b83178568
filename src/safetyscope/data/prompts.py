"""Prompt sets: load from txt / jsonl / csv / parquet, hash for provenance, split reproducibly."""

from __future__ import annotations

import csv
import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from safetyscope.data.jsonl import iter_jsonl
from safetyscope.errors import PromptError

#: Field names tried, in order, for the instruction in jsonl / csv / parquet rows.
TEXT_FIELDS = ("instruction", "prompt", "text", "goal", "question")


@dataclass(frozen=True)
class PromptSet:
    """An ordered list of instructions with a name and optional per-prompt labels."""

    prompts: tuple[str, ...]
    name: str = "prompts"
    labels: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.prompts:
            raise PromptError(f"Prompt set {self.name!r} is empty.")
        bad = [i for i, p in enumerate(self.prompts) if not isinstance(p, str) or not p.strip()]
        if bad:
            raise PromptError(f"Prompt set {self.name!r} has empty or non-string prompts at rows {bad[:10]}.")
        if self.labels is not None and len(self.labels) != len(self.prompts):
            raise PromptError(f"Prompt set {self.name!r}: {len(self.labels)} labels for {len(self.prompts)} prompts.")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def hash(self) -> str:
        """Content hash (order-sensitive) used in cache keys and provenance."""
        h = hashlib.sha256()
        for p in self.prompts:
            h.update(p.encode())
            h.update(b"\x00")
        return h.hexdigest()[:16]

    def require(self, minimum: int) -> PromptSet:
        """Raise a clear error when the set has fewer than ``minimum`` prompts; else return self."""
        if len(self) < minimum:
            raise PromptError(
                f"Prompt set {self.name!r} has {len(self)} prompts; this step needs at least {minimum}."
            )
        return self

    def split(self, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> tuple[PromptSet, ...]:
        """Shuffle with ``seed`` and split into parts (e.g. train/val/test) by ``fractions``."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        bounds = [0]
        for f in fractions:
            bounds.append(min(len(self), bounds[-1] + round(f * len(self))))
        bounds[-1] = len(self)
        parts = []
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            idx = order[lo:hi]
            labels = tuple(self.labels[j] for j in idx) if self.labels else None
            parts.append(PromptSet(tuple(self.prompts[j] for j in idx), f"{self.name}[{i}]", labels))
        return tuple(parts)


def _pick_field(row: dict[str, object], path: Path, line: int, column: str | None) -> str:
    if column is not None:
        if column not in row:
            raise PromptError(f"{path}:{line}: no field {column!r} (fields: {sorted(row)}).")
        return str(row[column])
    for name in TEXT_FIELDS:
        if name in row:
            return str(row[name])
    raise PromptError(f"{path}:{line}: none of the fields {TEXT_FIELDS} found (fields: {sorted(row)}). Use column=...")


def load_prompts(path: str | Path, column: str | None = None, name: str | None = None) -> PromptSet:
    """Load instructions from a file.

    ``.txt``: one prompt per non-empty line. ``.jsonl``: one JSON object per line (or a JSON
    string). ``.csv`` and ``.parquet``: one row per prompt. The text field is ``column`` or the
    first of :data:`TEXT_FIELDS` present.
    """
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"Prompt file {path} does not exist.")
    suffix = path.suffix.lower()
    prompts: list[str] = []
    if suffix == ".txt":
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    elif suffix == ".jsonl":
        for i, row in iter_jsonl(path, PromptError):
            prompts.append(row if isinstance(row, str) else _pick_field(row, path, i, column))
    elif suffix == ".csv":
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), 2):
                prompts.append(_pick_field(row, path, i, column))
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise PromptError("Reading parquet needs pyarrow: pip install pyarrow") from exc
        for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
            prompts.append(_pick_field(row, path, i, column))
    else:
        raise PromptError(f"Unsupported prompt file type {suffix!r}; use .txt, .jsonl, .csv or .parquet.")
    if not prompts:
        raise PromptError(f"Prompt file {path} contains no prompts.")
    return PromptSet(tuple(prompts), name or path.stem)
