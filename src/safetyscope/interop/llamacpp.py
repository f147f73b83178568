"""llama.cpp control vectors (GGUF): also repeng's and EasySteer's on-disk format.

Layout: a GGUF file with ``general.architecture = "controlvector"``, ``controlvector.model_hint``
(the HF ``model_type``, e.g. ``llama``), ``controlvector.layer_count``, and one float32 tensor
``direction.N`` of shape ``[d_model]`` per layer. llama.cpp adds ``direction.N`` to the output of
block ``N`` (blocks counted from 0; it cannot load ``N = 0``) = our ``resid_post`` N. We also
store our description under the metadata key ``safetyscope.directions`` (llama.cpp and repeng
ignore unknown keys).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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

ARCH = "controlvector"
GGUF_MAGIC = b"GGUF"


def _field_str(reader: object, key: str) -> str | None:
    field = reader.get_field(key)  # type: ignore[attr-defined]
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def gguf_architecture(path: Path) -> str | None:
    """``general.architecture`` of a GGUF file."""
    import gguf

    return _field_str(gguf.GGUFReader(str(path)), "general.architecture")


def read(path: str | Path) -> DirectionSet:
    """Read a control vector; each ``direction.N`` becomes a direction at ``resid_post`` N."""
    import gguf

    path = Path(path)
    reader = gguf.GGUFReader(str(path))
    arch = _field_str(reader, "general.architecture")
    if arch != ARCH:
        raise FormatError(
            f"{path} is a GGUF file of architecture {arch!r}, not a control vector "
            f"(general.architecture = {ARCH!r}). A model GGUF is an input to `safetyscope edit`."
        )
    vectors: dict[int, torch.Tensor] = {}
    for t in reader.tensors:
        if not t.name.startswith("direction."):
            continue
        try:
            n = int(t.name.split(".", 1)[1])
        except ValueError as exc:
            raise FormatError(f"{path}: tensor {t.name!r} is not named direction.N.") from exc
        vectors[n] = torch.from_numpy(np.array(t.data, dtype=np.float32).reshape(-1).copy())
    hint = _field_str(reader, f"{ARCH}.model_hint")
    prov = {"source_file": str(path), "model_type": hint} if hint else {"source_file": str(path)}
    return from_vectors(vectors, "block-output", "llamacpp", _field_str(reader, META_KEY), prov)


def write(dset: DirectionSet, out: str | Path, model_type: str) -> Path:
    """Write ``dset`` as a control vector (each direction's scaled vector at its block-output layer)."""
    import gguf

    from safetyscope.outputs import atomic_file

    tensors: dict[int, np.ndarray] = {}
    for d in dset.directions:
        n = peer_layer(d, "block-output", "llamacpp")
        if n == 0:
            raise FormatError(
                "llama.cpp cannot load direction.0 (the output of block 0, our resid_post 0 / "
                "resid_pre 1); use a later layer."
            )
        if n in tensors:
            raise FormatError(
                f"Two directions land on llama.cpp layer {n}; convert one at a time with --layer."
            )
        tensors[n] = scaled_vector(d, "llamacpp").numpy()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_type)
        writer.add_uint32(f"{ARCH}.layer_count", len(tensors))
        writer.add_string(META_KEY, embedded_meta(dset))
        for n in sorted(tensors):
            writer.add_tensor(f"direction.{n}", tensors[n])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out
