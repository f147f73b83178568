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


def _text(value: object, path: Path, line: int, name: str) -> str:
    """``value`` when it is non-empty text, else a :class:`PromptError` naming file, row and field."""
    if not isinstance(value, str):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise PromptError(
            f"{path}:{line}: field {name!r} is {type(value).__name__} {shown}, not text. "
            "Every prompt must be a non-empty string.")
    if not value.strip():
        raise PromptError(f"{path}:{line}: field {name!r} is empty.")
    return value


def _pick_field(row: object, path: Path, line: int, column: str | None) -> str:
    if not isinstance(row, dict):
        raise PromptError(
            f"{path}:{line}: expected an object with a text field (or a JSON string), got "
            f"{type(row).__name__}.")
    if column is not None:
        if column not in row:
            raise PromptError(f"{path}:{line}: no field {column!r} (fields: {sorted(map(str, row))}).")
        return _text(row[column], path, line, column)
    for name in TEXT_FIELDS:
        if name in row:
            return _text(row[name], path, line, name)
    raise PromptError(
        f"{path}:{line}: none of the fields {TEXT_FIELDS} found (fields: {sorted(map(str, row))}). Use column=...")


def _csv_rows(path: Path, column: str | None) -> list[str]:
    prompts: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise PromptError(
                        f"{path}:{line}: {len(reader.fieldnames or []) + len(row[None])} values but the header "
                        f"has {len(reader.fieldnames or [])} columns. Quote fields that contain commas.")
                short = [k for k, v in row.items() if v is None]
                if short:
                    raise PromptError(f"{path}:{line}: too few values; columns {short} are missing.")
                prompts.append(_pick_field(row, path, line, column))
        except csv.Error as exc:
            raise PromptError(f"{path}:{reader.line_num}: not valid CSV ({exc}).") from exc
    return prompts


def _parquet_rows(path: Path, column: str | None) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PromptError("Reading parquet needs pyarrow: pip install pyarrow") from exc
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PromptError(f"{path} is not a readable parquet file ({first}).") from exc
    return [_pick_field(row, path, i, column) for i, row in enumerate(rows, 1)]


def load_prompts(path: str | Path, column: str | None = None, name: str | None = None) -> PromptSet:
    """Load instructions from a file.

    ``.txt``: one prompt per non-empty line. ``.jsonl``: one JSON object per line (or a JSON
    string). ``.csv`` and ``.parquet``: one row per prompt. The text field is ``column`` or the
    first of :data:`TEXT_FIELDS` present.
    """
    path = Path(path)
    if path.is_dir():
        raise PromptError(f"Prompt file {path} is a directory; give a .txt, .jsonl, .csv or .parquet file.")
    if path.exists() and not path.is_file():
        raise PromptError(f"Prompt file {path} is not a regular file (a pipe, device or socket); save the prompts to a file.")
    if not path.is_file():
        raise PromptError(f"Prompt file {path} does not exist.")
    suffix = path.suffix.lower()
    prompts: list[str] = []
    try:
        if suffix == ".txt":
            text = path.read_text(encoding="utf-8")
            if "\x00" in text:
                raise PromptError(f"{path} contains NUL bytes: it is a binary file, not one prompt per line.")
            prompts = [line.strip() for line in text.splitlines() if line.strip()]
        elif suffix == ".jsonl":
            for i, row in iter_jsonl(path, PromptError):
                prompts.append(_text(row, path, i, "line") if isinstance(row, str) else _pick_field(row, path, i, column))
        elif suffix == ".csv":
            prompts = _csv_rows(path, column)
        elif suffix == ".parquet":
            prompts = _parquet_rows(path, column)
        else:
            raise PromptError(f"Unsupported prompt file type {suffix!r}; use .txt, .jsonl, .csv or .parquet.")
    except UnicodeDecodeError as exc:
        raise PromptError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}). Save it as UTF-8.") from exc
    except OSError as exc:
        raise PromptError(f"Cannot read prompt file {path}: {exc.strerror or exc}.") from exc
    if not prompts:
        raise PromptError(f"Prompt file {path} contains no prompts.")
    return PromptSet(tuple(prompts), name or path.stem)
