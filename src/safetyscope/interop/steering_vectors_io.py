"""steering-vectors (``pip install steering-vectors``): its objects, and a file format for them.

The package keeps vectors in memory only (``SteeringVector(layer_activations={N: [d]},
layer_type="decoder_block")``; with ``decoder_block`` it adds ``layer_activations[N]`` to the
output of block ``N`` = our ``resid_post`` N). On disk we write one float32 tensor per layer,
``layer.N``, in a safetensors file whose metadata records ``steering_vectors.layer_type`` (only
``decoder_block`` has a residual-stream site) and our description. :func:`to_steering_vector` and
:func:`from_steering_vector` convert to and from the package's objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from safetyscope.directions import DirectionSet
from safetyscope.interop.peer import (
    META_KEY,
    FormatError,
    embedded_meta,
    from_vectors,
    peer_layer,
    scaled_vector,
)

LAYER_TYPE_KEY = "steering_vectors.layer_type"
RESIDUAL_LAYER_TYPE = "decoder_block"


def _vectors(dset: DirectionSet) -> dict[int, torch.Tensor]:
    out: dict[int, torch.Tensor] = {}
    for d in dset.directions:
        n = peer_layer(d, "block-output", "steering-vectors")
        if n in out:
            raise FormatError(
                f"Two directions land on steering-vectors layer {n}; convert one at a time with --layer."
            )
        out[n] = scaled_vector(d, "steering-vectors")
    return out


def _from(
    vectors: dict[int, torch.Tensor], layer_type: str, meta: str | None, prov: dict[str, Any]
) -> DirectionSet:
    if layer_type != RESIDUAL_LAYER_TYPE:
        raise FormatError(
            f"steering-vectors layer type {layer_type!r} is not a residual-stream site; only "
            f"{RESIDUAL_LAYER_TYPE!r} (a block's output, our resid_post) converts."
        )
    return from_vectors(vectors, "block-output", "steering-vectors", meta, prov)


def read(path: str | Path) -> DirectionSet:
    """Read a file written by :func:`write`."""
    path = Path(path)
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
        if LAYER_TYPE_KEY not in meta:
            raise FormatError(
                f"{path} is safetensors without '{LAYER_TYPE_KEY}' metadata: not a steering-vectors file."
            )
        vectors = {int(k.split(".", 1)[1]): fh.get_tensor(k) for k in fh.keys() if k.startswith("layer.")}  # noqa: SIM118
    return _from(vectors, meta[LAYER_TYPE_KEY], meta.get(META_KEY), {"source_file": str(path)})


def write(dset: DirectionSet, out: str | Path) -> Path:
    """Write ``dset`` as per-layer tensors ``layer.N`` (scaled vectors at their block-output layer)."""
    from safetyscope.outputs import atomic_file

    tensors = {f"layer.{n}": v.contiguous() for n, v in _vectors(dset).items()}
    out = Path(out)
    with atomic_file(out) as tmp:
        save_file(
            tensors, str(tmp), metadata={LAYER_TYPE_KEY: RESIDUAL_LAYER_TYPE, META_KEY: embedded_meta(dset)}
        )
    return out


def to_steering_vector(dset: DirectionSet) -> Any:
    """A ``steering_vectors.SteeringVector`` adding each direction's scaled vector where we add it."""
    try:
        from steering_vectors import SteeringVector
    except ImportError as exc:
        raise FormatError(
            "to_steering_vector needs the steering-vectors package: pip install 'safetyscope[peers]'."
        ) from exc
    return SteeringVector(layer_activations=_vectors(dset), layer_type=RESIDUAL_LAYER_TYPE)


def from_steering_vector(vector: Any, source: str = "steering_vectors.SteeringVector") -> DirectionSet:
    """Directions from a ``steering_vectors.SteeringVector`` (``decoder_block`` layers only)."""
    vectors = {int(k): v.detach().cpu() for k, v in vector.layer_activations.items()}
    return _from(vectors, str(vector.layer_type), None, {"source": source})
