"""Where safetyscope keeps its cache, and safe (atomic, never-overwriting) output directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "SAFETYSCOPE_CACHE"


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder inside the safetyscope cache.

    The cache root is ``$SAFETYSCOPE_CACHE`` when set, else ``$XDG_CACHE_HOME/safetyscope``,
    else ``~/.cache/safetyscope``.
    """
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "safetyscope"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def organism_path(size: str = "tiny", seed: int = 0) -> Path:
    """Where the cached organism of ``size`` and ``seed`` lives (it may not exist yet)."""
    return cache_dir("organisms") / f"{size}-seed{seed}"


def check_output_dir(out: Path, force: bool) -> None:
    """Check an output folder before any work (see :func:`safetyscope.outputs.check_output`).

    Raises :class:`OutputExistsError` when ``out`` exists and is not empty, unless ``force``; and
    :class:`~safetyscope.errors.UnsafeOutputError` when it is a file, sits in a model directory,
    is not ours to replace, or cannot be written.
    """
    from safetyscope.outputs import check_output

    check_output(out, force=force, kind="dir")


@contextmanager
def atomic_output_dir(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``out`` only when the block succeeds.

    A failure inside the block leaves ``out`` exactly as it was. An existing ``out`` is
    refused unless ``force``; with ``force`` it is replaced in one rename at the end, and only
    when it looks like a safetyscope output (see :func:`safetyscope.outputs.looks_ours`).
    """
    from safetyscope.outputs import refuse_replace

    out = Path(out)
    check_output_dir(out, force)
    if force:
        refuse_replace(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        tmp.rename(out)
