"""Read JSON Lines files with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetyscope.errors import SafetyscopeError


def iter_jsonl(path: Path, error: type[SafetyscopeError]) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank line; invalid JSON raises ``error``.

    A path ending in ``.gz`` is read through gzip.
    """
    number = 0
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if "\x00" in line:
                    raise error(f"{path}:{number}: contains NUL bytes; this is a binary file, not JSON Lines.")
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{path}:{number}: invalid JSON ({exc.msg}).") from exc
                yield number, value
    except UnicodeDecodeError as exc:
        where = f"after line {number}" if number else "in its first lines"
        raise error(f"{path}: not UTF-8 text {where} ({exc.reason}). Save it as UTF-8.") from exc
    except (OSError, EOFError) as exc:
        raise error(f"Cannot read {path}: {exc.strerror or exc}.") from exc
