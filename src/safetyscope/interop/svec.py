"""IBM activation-steering ``.svec`` files (JSON).

Layout, as its ``SteeringVector.save`` writes it: ``{"model_type": str, "directions": {"L":
[floats]}, "explained_variances": {"L": float}}``. Its ``MalleableModel`` adds the vector for
``L`` to the *input* of block ``L`` (its ``LeashLayer`` edits the hidden states before calling
the block) = our ``resid_pre`` L, although it reads the vector from ``hidden_states[L + 1]``
(the block's output). We follow where it is added. Its own vectors are unit-norm PCA axes and
the strength is given when steering; ours are written scaled, so strength 1 adds what
``safetyscope steer --scale 1`` adds. Our description goes under an extra key its loader ignores.
The package is not on PyPI, so no parity test runs against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from safetyscope.directions import DirectionSet
from safetyscope.interop.peer import (
    META_KEY,
    FormatError,
    embedded_meta,
    from_vectors,
    peer_layer,
    scaled_vector,
)


def looks_like(data: Any) -> bool:
    """Whether parsed JSON has the ``.svec`` shape."""
    return isinstance(data, dict) and isinstance(data.get("directions"), dict) and "model_type" in data


def read(path: str | Path) -> DirectionSet:
    """Read a ``.svec`` file: the vector of key ``L`` becomes a direction at ``resid_pre`` L."""
    path = Path(path)
    data = json.loads(path.read_text())
    if not looks_like(data):
        raise FormatError(
            f"{path} is JSON but not an .svec file (needs 'model_type' and a 'directions' object)."
        )
    try:
        vectors = {int(k): torch.tensor(v, dtype=torch.float64) for k, v in data["directions"].items()}
    except (TypeError, ValueError) as exc:
        raise FormatError(
            f"{path}: .svec directions must map layer numbers to lists of floats ({exc})."
        ) from exc
    prov: dict[str, Any] = {"source_file": str(path), "model_type": data.get("model_type")}
    if data.get("explained_variances"):
        prov["explained_variances"] = data["explained_variances"]
    return from_vectors(vectors, "block-input", "svec", data.get(META_KEY), prov)


def write(dset: DirectionSet, out: str | Path, model_type: str) -> Path:
    """Write ``dset`` as ``.svec`` JSON (scaled vectors at their block-input layer)."""
    from safetyscope.outputs import atomic_file

    directions: dict[str, list[float]] = {}
    variances: dict[str, float] = {}
    for d in dset.directions:
        n = peer_layer(d, "block-input", "svec")
        if str(n) in directions:
            raise FormatError(f"Two directions land on .svec layer {n}; convert one at a time with --layer.")
        directions[str(n)] = scaled_vector(d, "svec").tolist()
        ev = (d.provenance.get("explained_variances") or {}).get(str(n))
        if ev is not None:
            variances[str(n)] = ev
    data = {
        "model_type": model_type,
        "directions": directions,
        "explained_variances": variances,
        META_KEY: embedded_meta(dset),
    }
    out = Path(out)
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(data))
    return out
