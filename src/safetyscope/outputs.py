"""Output-path safety: the one check every command runs on ``--out`` before it computes anything.

Rules (whatever ``force`` says):

* an output never is, contains, or sits inside an input (a model directory, a prompt file...);
* an output never sits inside a Hugging Face model directory (a folder with ``config.json``
  and weights), and replaces one only when it is one of ours (an edited model, an organism);
* ``force`` replaces only things that look like ours (:func:`looks_ours`): an empty folder, a
  folder holding one of :data:`OUR_MARKERS`, a folder inside the safetyscope cache, or a file;
* a file output that is an existing directory, a folder output that is an existing file, and an
  output whose nearest existing parent is not writable fail at once, before any computation.

:func:`atomic_file` writes one file through a temporary sibling that never outlives a failure,
and :func:`output_lock` takes an advisory lock (``fcntl.flock``) on an output folder so two
processes never work in one folder at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from safetyscope.errors import BusyError, OutputExistsError, UnsafeOutputError
from safetyscope.paths import cache_dir

#: Files whose presence marks a folder as a safetyscope output (audit, edited model, organism,
#: converted GGUF, activation cache entry).
OUR_MARKERS: tuple[str, ...] = ("results.json", "cache/manifest.json", "safetyscope_edit.json",
                                "organism_card.json", "safetyscope_source.json", "result.safetensors",
                                "safetyscope_sae.json", "compare.json", "training_card.json")

#: File names that make a folder a Hugging Face model directory (with ``config.json``).
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.safetensors.index.json")

PathLike = str | os.PathLike[str]


def _cache_root() -> Path:
    return cache_dir().resolve()


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``config.json`` and weight files."""
    if not (path / "config.json").is_file():
        return False
    return any(next(path.glob(g), None) is not None for g in _WEIGHT_GLOBS)


def looks_ours(path: Path) -> bool:
    """Whether ``force`` may replace ``path``: a file, an empty folder, a folder holding one of
    :data:`OUR_MARKERS`, or a folder inside the safetyscope cache."""
    if not path.exists() or path.is_file():
        return True
    if not path.is_dir():
        return False
    if next(path.iterdir(), None) is None or any((path / m).is_file() for m in OUR_MARKERS):
        return True
    root = _cache_root()
    return root in path.resolve().parents


def _ours_model_dir(path: Path) -> bool:
    """A model directory safetyscope wrote (edited model, organism, converted GGUF) or keeps in its cache."""
    return any((path / m).is_file() for m in OUR_MARKERS) or _cache_root() in path.resolve().parents


def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if inp in out.parents:
        return "is inside"
    if out in inp.parents:
        return "contains"
    return None


def check_output(out: PathLike, *, force: bool, kind: Literal["file", "dir"],
                 inputs: Iterable[PathLike | None] = (), resume_ok: bool = False,
                 option: str = "--out") -> Path:
    """Validate an output path before any computation; return it as a :class:`Path`.

    Args:
        out: the output file or folder.
        force: whether an existing output may be replaced (only if it :func:`looks_ours`).
        kind: ``"file"`` or ``"dir"``: what will be written at ``out``.
        inputs: input paths (model directory, GGUF file, prompt or direction files); ``None`` and
            names that are not paths on disk are skipped.
        resume_ok: an existing non-empty ``out`` is allowed without ``force`` (the caller resumes).
        option: the option's name in messages.

    Raises:
        UnsafeOutputError: ``out`` is, contains, or is inside an input or a model directory; it
            has the wrong kind; it is not ours to replace; or its folder is not writable.
        OutputExistsError: ``out`` exists, is not empty, and neither ``force`` nor ``resume_ok``.
    """
    out = Path(out).expanduser()
    if "\x00" in str(out):
        raise UnsafeOutputError(f"{option} contains a NUL byte.")
    real = out.resolve()
    for inp in inputs:
        if inp is None or not str(inp):
            continue
        p = Path(inp).expanduser()
        if not p.exists():
            continue
        rel = _relation(real, p.resolve())
        if rel is not None:
            raise UnsafeOutputError(
                f"{option} {out} {rel} the input {p}. Outputs never overwrite inputs, whatever --force says; "
                "choose a path outside it.")
    for parent in real.parents:
        if is_model_dir(parent):
            raise UnsafeOutputError(
                f"{option} {out} is inside the model directory {parent}. Write outputs outside model folders.")
    if is_model_dir(real) and not (kind == "dir" and _ours_model_dir(real)):
        raise UnsafeOutputError(
            f"{option} {out} is a model directory that safetyscope did not write; it is never replaced, "
            "whatever --force says. Choose another path.")
    if out.exists() or out.is_symlink():
        if kind == "file" and out.is_dir():
            raise UnsafeOutputError(f"{option} {out} is a directory; give a file path, e.g. {out / 'out.json'}.")
        if kind == "dir" and not out.is_dir():
            raise UnsafeOutputError(f"{option} {out} is a file; give a folder path.")
        nonempty = out.is_file() or next(out.iterdir(), None) is not None
        if nonempty and not force and not resume_ok:
            raise OutputExistsError(
                f"Output path {out} already exists. Choose another path or pass --force to replace it.")
        if nonempty and force and not looks_ours(out):
            raise UnsafeOutputError(
                f"{option} {out} does not look like a safetyscope output (none of {', '.join(OUR_MARKERS)}), "
                "so --force will not delete it. Remove it yourself or choose another path.")
    check_writable(out if kind == "dir" else out.parent, option)
    return out


def check_writable(folder: Path, option: str = "--out") -> None:
    """Fail unless files can be created in ``folder`` (or in its nearest existing ancestor)."""
    anc = Path(folder).expanduser().absolute()
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise UnsafeOutputError(f"Cannot create {option} {folder}: {anc} is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".safetyscope-probe-", dir=anc)
    except OSError as exc:
        raise UnsafeOutputError(
            f"Cannot write {option} {folder}: {anc} is not writable ({exc.strerror}). Choose another path."
        ) from exc
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` that replaces it only when the block succeeds.

    On any failure the temporary file is removed, so no ``*.tmp`` debris is left behind and an
    existing ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(out: PathLike, what: str = "audit") -> Iterator[None]:
    """Hold an exclusive advisory lock on output folder ``out`` for the block.

    The lock file lives in the safetyscope cache (``locks/``), keyed by the resolved path, so the
    user's folders get no debris and ``--force`` may replace ``out`` while the lock is held.

    Raises:
        BusyError: another process holds the lock (e.g. a second audit into the same ``--out``).
    """
    key = hashlib.sha256(str(Path(out).expanduser().resolve()).encode()).hexdigest()[:24]
    lock = cache_dir("locks") / f"{key}.lock"
    fh = lock.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise BusyError(
                f"Another {what} is writing to {out} ({holder}). Wait for it to finish, or choose another --out."
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.close()


def refuse_replace(out: Path) -> None:
    """Raise :class:`UnsafeOutputError` if ``force`` must not replace ``out`` (see :func:`looks_ours`)."""
    if out.exists() and not looks_ours(out):
        raise UnsafeOutputError(
            f"{out} does not look like a safetyscope output (none of {', '.join(OUR_MARKERS)}), so it is "
            "not replaced even with force=True. Remove it yourself or choose another path.")
    if out.is_dir() and is_model_dir(out) and not _ours_model_dir(out):
        raise UnsafeOutputError(f"{out} is a model directory that safetyscope did not write; it is never replaced.")
