"""Load activation tensors saved by other tools: ``.safetensors``, ``.pt``, ``.npy`` / ``.npz``.

Published activations come as fp16 or bf16, often saved from CUDA. :func:`load_tensor` reads
them without executing code (``torch.load(weights_only=True, map_location="cpu")``,
``numpy.load(allow_pickle=False)``, safetensors) and returns float64 on the CPU. A file with
several tensors needs ``key``. :func:`load_pair` loads a harmful and a harmless file and checks
that they can be paired by index (:func:`check_pairable`).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope.errors import SafetyscopeError

#: File extensions :func:`load_tensor` reads.
TENSOR_SUFFIXES: tuple[str, ...] = (".safetensors", ".pt", ".pth", ".npy", ".npz")


class TensorFileError(SafetyscopeError):
    """A tensor file is missing, unreadable, ambiguous, or holds unusable values."""


@dataclass
class LoadedTensor:
    """A tensor read from disk, upcast to float64 on the CPU.

    Attributes:
        values: the data, float64.
        path: the file it came from.
        key: the tensor's name inside the file (``None`` for a bare tensor / ``.npy``).
        source_dtype: the dtype on disk (e.g. ``"float16"``).
        layers: layer numbers of the middle axis, when the file records them.
        provenance: metadata the file carried (e.g. a safetyscope collection's provenance).
    """

    values: Float[Tensor, "*shape"]
    path: Path
    key: str | None
    source_dtype: str
    layers: list[int] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def _pick(tensors: dict[str, Any], key: str | None, path: Path) -> tuple[Any, str | None]:
    if key is not None:
        if key not in tensors:
            raise TensorFileError(f"{path} has no tensor {key!r}; it holds: {sorted(tensors)[:20]}.")
        return tensors[key], key
    if len(tensors) == 1:
        (name, value), = tensors.items()
        return value, name
    raise TensorFileError(f"{path} holds {len(tensors)} tensors {sorted(tensors)[:20]}; choose one with --key.")


def _safetensors(path: Path, key: str | None) -> tuple[Tensor, str | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            names = list(fh.keys())
            name = _pick(dict.fromkeys(names), key, path)[1]
            return fh.get_tensor(str(name)), name
    except SafetensorError as exc:
        raise TensorFileError(f"{path} is not a readable safetensors file: {exc}.") from exc


def _torch(path: Path, key: str | None) -> tuple[Tensor, str | None]:
    if not zipfile.is_zipfile(path):
        raise TensorFileError(
            f"{path} is not a readable torch file (not the zip format torch.save writes). "
            "Re-save it with torch.save(tensor) or as .safetensors."
        )
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        import re

        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        detail = f" (it refers to {found[1]})" if found else ""
        raise TensorFileError(
            f"{path} holds Python objects beyond tensors{detail}, which safetyscope will not unpickle. "
            "Convert it to .safetensors (or torch.save a plain tensor or dict of tensors) where you trust the file."
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise TensorFileError(f"{path} is not a readable torch file: {exc}.") from exc
    if isinstance(obj, Tensor):
        if key is not None:
            raise TensorFileError(f"{path} holds a single tensor; drop --key {key!r}.")
        return obj, None
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
        if not tensors:
            raise TensorFileError(f"{path} holds a dict without tensors (keys {list(obj)[:20]}).")
        return _pick(tensors, key, path)
    raise TensorFileError(f"{path} holds a {type(obj).__name__}; expected a tensor or a dict of tensors.")


def _numpy(path: Path, key: str | None) -> tuple[Tensor, str | None]:
    try:
        obj = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise TensorFileError(
            f"{path} cannot be read without unpickling (an object array) or is not a numpy file: {exc}."
        ) from exc
    except OSError as exc:
        raise TensorFileError(f"{path} is not a readable numpy file: {exc}.") from exc
    name: str | None = None
    if isinstance(obj, np.lib.npyio.NpzFile):
        with obj:
            arr, name = _pick({k: obj[k] for k in obj.files}, key, path)
    else:
        if key is not None:
            raise TensorFileError(f"{path} holds a single array; drop --key {key!r}.")
        arr = obj
    if arr.dtype.kind not in "fiu":
        raise TensorFileError(f"{path} has dtype {arr.dtype}; expected numeric activations.")
    return torch.from_numpy(np.ascontiguousarray(arr)), name


def load_tensor(path: str | Path, key: str | None = None) -> LoadedTensor:
    """Read one activation tensor as float64 on the CPU, rejecting NaN/inf.

    Args:
        path: a ``.safetensors``, ``.pt``/``.pth``, ``.npy`` or ``.npz`` file.
        key: the tensor's name when the file holds several.

    Raises:
        TensorFileError: missing file, unsupported extension, unreadable or ambiguous content,
            code-carrying pickles, non-numeric data, NaN or inf.
    """
    path = Path(path)
    if not path.is_file():
        raise TensorFileError(f"No such tensor file: {path}.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        raw, name = _safetensors(path, key)
    elif suffix in (".pt", ".pth"):
        raw, name = _torch(path, key)
    elif suffix in (".npy", ".npz"):
        raw, name = _numpy(path, key)
    else:
        raise TensorFileError(f"Unsupported tensor file {path.name!r}; use one of {', '.join(TENSOR_SUFFIXES)}.")
    return as_loaded(raw, path, name)


def as_loaded(raw: Tensor, path: Path, key: str | None = None, layers: list[int] | None = None,
              provenance: dict[str, Any] | None = None) -> LoadedTensor:
    """Wrap a tensor read from ``path`` as float64 :class:`LoadedTensor`, rejecting NaN/inf."""
    if not (raw.is_floating_point() or raw.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TensorFileError(f"{path} has dtype {raw.dtype}; expected numeric activations.")
    values = raw.detach().to("cpu", torch.float64)
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = bad.reshape(values.shape[0], -1).any(-1).nonzero().flatten().tolist() if values.ndim else []
        raise TensorFileError(
            f"{path} has {int(bad.sum())} NaN/inf values (rows {rows[:10]}{' ...' if len(rows) > 10 else ''}; "
            f"stored as {str(raw.dtype).removeprefix('torch.')}). Drop those rows or re-collect in float32."
        )
    return LoadedTensor(values, path, key, str(raw.dtype).removeprefix("torch."), layers, dict(provenance or {}))


def load_pair(
    harmful: str | Path, harmless: str | Path, key: str | None = None, *, paired: bool = True
) -> tuple[LoadedTensor, LoadedTensor]:
    """Load two activation files and check they are ``[n, d]`` or ``[n, layers, d]`` alike.

    Args:
        harmful, harmless: the two files.
        key: tensor name inside both files (when they hold several).
        paired: require the same number of rows (rows are paired by index).

    Raises:
        TensorFileError: a load error, a wrong number of dimensions, or differing ``n``,
            ``layers`` or ``d``.
    """
    a, b = load_tensor(harmful, key), load_tensor(harmless, key)
    check_pairable(a, b, paired=paired)
    return a, b


def check_pairable(a: LoadedTensor, b: LoadedTensor, *, paired: bool = True) -> None:
    """Raise :class:`TensorFileError` unless ``a`` and ``b`` are both ``[n, d]`` or ``[n, layers, d]``
    with equal ``d`` (and ``layers``, and ``n`` when ``paired``)."""
    for t in (a, b):
        if t.values.ndim not in (2, 3):
            raise TensorFileError(
                f"{t.path} has shape {list(t.values.shape)} ({t.values.ndim}-D); expected [n, d] or [n, layers, d]."
            )
    sa, sb = list(a.values.shape), list(b.values.shape)
    if a.values.ndim != b.values.ndim:
        raise TensorFileError(f"Harmful is {sa} but harmless is {sb}: one has a layer axis, the other not.")
    if sa[-1] != sb[-1]:
        raise TensorFileError(f"Hidden sizes differ: harmful d={sa[-1]} ({sa}) vs harmless d={sb[-1]} ({sb}).")
    if a.values.ndim == 3 and sa[1] != sb[1]:
        raise TensorFileError(f"Layer counts differ: harmful {sa[1]} vs harmless {sb[1]} ({sa} vs {sb}).")
    if paired and sa[0] != sb[0]:
        raise TensorFileError(
            f"Rows are paired by index, but harmful has n={sa[0]} and harmless n={sb[0]} ({sa} vs {sb})."
        )
    if a.values.shape[0] < 2:
        raise TensorFileError(f"Need at least 2 rows per file; got n={sa[0]}.")
    if a.layers is not None and b.layers is not None and a.layers != b.layers:
        raise TensorFileError(f"The files were collected at different layers: {a.layers} vs {b.layers}.")
