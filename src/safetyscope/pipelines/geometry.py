"""Model-free geometry of saved activations: the ``safetyscope geometry`` command.

Loads a harmful and a harmless activation file (``[n, d]`` or ``[n, layers, d]``, rows paired
by index; ``.safetensors``, ``.pt``, ``.npy``/``.npz``, or a ``safetyscope activations collect
--reduce none`` file), upcasts to float64, and computes the per-layer SVD spectrum of the
paired differences (:func:`safetyscope.directions.geometry.geometry`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetyscope.data.tensors import LoadedTensor, TensorFileError, as_loaded, check_pairable, load_tensor
from safetyscope.directions.covariance import Shrinkage
from safetyscope.directions.extract import METHODS
from safetyscope.directions.geometry import GeometryReport, geometry


def _is_collection(path: Path) -> bool:
    """Whether ``path`` is a safetensors file written by :meth:`ActivationResult.save` with kept rows."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("safetyscope", "null") or "null")
    except (SafetensorError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("reduce") in ("none", "paired_diff")


def load_activations(path: str | Path, key: str | None = None) -> LoadedTensor:
    """Load one activation file; a safetyscope collection becomes ``[n_prompts, layers, d]``."""
    path = Path(path)
    if key is None and path.suffix.lower() == ".safetensors" and path.is_file() and _is_collection(path):
        from safetyscope.activations.result import ActivationResult
        from safetyscope.directions.contrast import stacked

        values, layers, prov = stacked(ActivationResult.load(path))
        return as_loaded(values, path, None, layers, prov)
    return load_tensor(path, key)


def run_geometry(
    harmful: str | Path,
    harmless: str | Path,
    *,
    key: str | None = None,
    centred: bool = False,
    top_k: int = 5,
    mahalanobis: bool = False,
    shrinkage: Shrinkage = "ledoit_wolf",
    methods: Sequence[str] | None = None,
) -> GeometryReport:
    """Spectrum of paired differences (and optional extras) for two saved activation files.

    Args:
        harmful, harmless: activation files, rows paired by index.
        key: tensor name inside both files, when they hold several.
        centred: centre the paired differences before the SVD (default: uncentred, as LAT).
        top_k: ``k`` of the cumulative share per layer.
        mahalanobis: add the Mahalanobis separation per layer (shrinkage covariance).
        shrinkage: ``"ledoit_wolf"`` or a fixed value in ``[0, 1]``.
        methods: extraction methods to compare by cosine per layer (and across layers).

    Raises:
        TensorFileError: unreadable files, wrong ``ndim``, differing ``n``/``layers``/``d``, NaN.
    """
    if top_k < 1:
        raise TensorFileError(f"top_k must be >= 1, got {top_k}.")
    unknown = [m for m in methods or () if m not in METHODS]
    if unknown:
        raise TensorFileError(f"Unknown methods {unknown}; choose from {sorted(METHODS)}.")
    a, b = load_activations(harmful, key), load_activations(harmless, key)
    check_pairable(a, b, paired=True)
    provenance: dict[str, Any] = {
        "harmful": {"path": str(a.path), "key": a.key, "dtype": a.source_dtype, "shape": list(a.values.shape)},
        "harmless": {"path": str(b.path), "key": b.key, "dtype": b.source_dtype, "shape": list(b.values.shape)},
    }
    for name, t in (("harmful", a), ("harmless", b)):
        if t.provenance:
            provenance[name]["collection"] = t.provenance
    return geometry(a.values, b.values, centred=centred, top_k=top_k, layers=a.layers,
                    mahalanobis=mahalanobis, shrinkage=shrinkage, methods=methods, provenance=provenance)
