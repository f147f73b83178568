"""The refusal-direction repository's artefact (Arditi et al. 2024): a folder with two files.

* ``direction.pt``: one ``[d_model]`` tensor saved with ``torch.save``, the difference of means
  (not normalised); we load it with ``weights_only=True``.
* ``direction_metadata.json``: ``{"pos": p, "layer": l}``: ``l`` indexes the block-input
  pre-hooks it was read at (our ``resid_pre`` l) and ``p`` the post-instruction token it was
  read at (negative, from the end of the template), our provenance ``eoi_position``.

It holds one direction; a multi-layer input needs ``--layer``. We also write
``safetyscope_source.json`` (our description; the repository ignores it).
"""

from __future__ import annotations

import json
from pathlib import Path

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

VECTOR_FILE = "direction.pt"
META_FILE = "direction_metadata.json"
OURS_FILE = "safetyscope_source.json"


def folder_of(path: Path) -> Path | None:
    """The artefact folder ``path`` names (the folder or its ``direction.pt``), if both files are there."""
    folder = path if path.is_dir() else path.parent
    if (folder / VECTOR_FILE).is_file() and (folder / META_FILE).is_file():
        return folder
    return None


def read(path: str | Path) -> DirectionSet:
    """Read the folder: one direction at ``resid_pre`` ``layer``, ``pos`` kept as ``eoi_position``."""
    folder = folder_of(Path(path))
    if folder is None:
        raise FormatError(f"{path} is not a refusal-direction folder (needs {VECTOR_FILE} and {META_FILE}).")
    meta = json.loads((folder / META_FILE).read_text())
    if not isinstance(meta, dict) or not isinstance(meta.get("layer"), int):
        raise FormatError(f"{folder / META_FILE} must hold an integer 'layer' (and 'pos').")
    vec = torch.load(folder / VECTOR_FILE, map_location="cpu", weights_only=True)
    if not isinstance(vec, torch.Tensor) or vec.dim() != 1:
        raise FormatError(
            f"{folder / VECTOR_FILE} must hold one 1-D tensor; got {type(vec).__name__} "
            f"{tuple(vec.shape) if isinstance(vec, torch.Tensor) else ''}."
        )
    ours = (folder / OURS_FILE).read_text() if (folder / OURS_FILE).is_file() else meta.get(META_KEY)
    prov = {"source_file": str(folder), "eoi_position": meta.get("pos")}
    return from_vectors({meta["layer"]: vec.double()}, "block-input", "refusal-direction", ours, prov)


def write(dset: DirectionSet, out: str | Path, pos: int | None = None, force: bool = False) -> Path:
    """Write one direction as the folder (its scaled vector = the difference of means for ``diff_means``)."""
    from safetyscope.paths import atomic_output_dir

    if len(dset.directions) != 1:
        raise FormatError(
            f"refusal-direction holds one direction; the input holds {len(dset)} "
            f"(layers {dset.layers}). Pick one with --layer."
        )
    d = dset.directions[0]
    layer = peer_layer(d, "block-input", "refusal-direction")
    if pos is None:
        pos = d.provenance.get("eoi_position")
    if pos is None:
        raise FormatError(
            "refusal-direction records the token position ('pos') the direction was read at, and "
            "this direction does not say; pass --pos (e.g. -1: the last post-instruction token)."
        )
    with atomic_output_dir(Path(out), force=force) as tmp:
        torch.save(scaled_vector(d, "refusal-direction").clone(), tmp / VECTOR_FILE)
        (tmp / META_FILE).write_text(json.dumps({"pos": int(pos), "layer": layer}, indent=4))
        (tmp / OURS_FILE).write_text(embedded_meta(dset))
    return Path(out)
