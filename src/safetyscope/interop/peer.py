"""What every peer format shares: site conventions, the scaled vector, and our embedded metadata.

Peers store one *added* vector per layer, so a :class:`~safetyscope.directions.Direction` is
written as its scaled vector ``vector · mean_gap`` (what ``safetyscope steer --scale 1`` adds) and
read back as ``unit = v / ‖v‖`` with ``raw_norm = mean_gap = ‖v‖``: magnitude and sign of the
added vector are preserved exactly (to float32). Where a peer file has room for extra metadata we
also embed our own description of each direction (:func:`embedded_meta`), so a round trip through
the peer restores method, provenance, fingerprint and stream point; a vector that a peer tool
changed since (another norm or direction) no longer matches its description and is read fresh.

Site conventions (``N`` = the peer's layer number):

* ``block-output``: the vector is added to the output of decoder block ``N`` = our ``resid_post`` N
  (= ``resid_pre`` N+1). llama.cpp control vectors (``direction.N``, N ≥ 1), repeng and
  steering-vectors (``decoder_block``).
* ``block-input``: added to the input of block ``N`` = our ``resid_pre`` N. IBM
  activation-steering (its ``LeashLayer`` edits the block's input) and the refusal-direction
  repository (``layer`` indexes block-input pre-hooks).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import torch
from torch import Tensor

from safetyscope.activations.sites import Site
from safetyscope.directions import Direction, DirectionError, DirectionSet

#: Key (GGUF metadata, JSON key, safetensors metadata) under which our description is embedded.
META_KEY = "safetyscope.directions"
Convention = Literal["block-output", "block-input"]


class FormatError(DirectionError):
    """A file is not in the format it claims, or a direction cannot be written in a format."""


def peer_layer(d: Direction, convention: Convention, fmt: str) -> int:
    """The peer's layer number for ``d``'s site under ``convention``; refuses what the peer cannot express."""
    site = d.site
    if site is None:
        raise FormatError(
            f"{fmt} records the layer each vector is added at, but this direction records no site "
            f"(layer {d.layer}, point {d.point}). Give it one with --layer, e.g. --layer 5.resid_post."
        )
    if site.point not in ("resid_pre", "resid_post"):
        raise FormatError(
            f"{fmt} adds vectors to the residual stream; {site.key} is a {site.point} site, which it cannot "
            "express. Convert a resid_pre/resid_post direction."
        )
    if convention == "block-output":
        n = site.layer if site.point == "resid_post" else site.layer - 1
        if n < 0:
            raise FormatError(
                f"{fmt} adds to the output of a block; {site.key} is the embedding output, before "
                "block 0, which it cannot express."
            )
        return n
    return site.layer if site.point == "resid_pre" else site.layer + 1


def site_of(n: int, convention: Convention) -> Site:
    """Our site for a peer's layer number ``n``."""
    return Site(n, "resid_post" if convention == "block-output" else "resid_pre")


def scaled_vector(d: Direction, fmt: str) -> Tensor:
    """``vector · mean_gap`` as float32; refuses subspaces (peers hold one vector per layer)."""
    if d.rank > 1:
        raise FormatError(
            f"{fmt} holds one vector per layer; this direction is a rank-{d.rank} subspace. "
            "Keep it in the safetyscope format (.safetensors) or convert one direction of it."
        )
    return (d.vector.double() * d.mean_gap).float()


def embedded_meta(dset: DirectionSet) -> str:
    """Our JSON description of ``dset`` (no tensors), for a peer file's metadata."""
    return json.dumps(
        {
            "method": dset.method,
            "provenance": dset.provenance,
            "directions": [d.meta() for d in dset.directions],
        },
        default=str,
    )


def _matching(meta: dict[str, Any] | None, site: Site, norm: float) -> dict[str, Any] | None:
    for m in (meta or {}).get("directions", []):
        layer, point = m.get("layer"), m.get("point")
        if layer is None or point not in ("resid_pre", "resid_post"):
            continue
        same = (
            Site(layer, point) == site
            or (point == "resid_pre" and site.point == "resid_post" and layer == site.layer + 1)
            or (point == "resid_post" and site.point == "resid_pre" and layer + 1 == site.layer)
        )
        gap = float(m.get("mean_gap", 0.0))
        if same and abs(abs(gap) - norm) <= 1e-5 * max(norm, 1e-12) + 1e-7 and int(m.get("rank", 1)) == 1:
            return m
    return None


def from_vectors(
    vectors: dict[int, Tensor],
    convention: Convention,
    fmt: str,
    meta_json: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> DirectionSet:
    """Directions from a peer's ``{layer: added vector}``, restoring our embedded description where it still matches."""
    meta = None
    if meta_json:
        try:
            meta = json.loads(meta_json)
        except json.JSONDecodeError:
            meta = None
    prov = dict(provenance or {}) | {"imported_from": fmt}
    dirs = []
    for n in sorted(vectors):
        v = vectors[n].detach().to(torch.float64).reshape(-1)
        norm = float(v.norm())
        if not norm > 0 or not torch.isfinite(v).all():
            raise FormatError(f"{fmt} vector for layer {n} is zero or not finite; it cannot be a direction.")
        site = site_of(n, convention)
        m = _matching(meta, site, norm)
        if m is not None:  # our own file, unchanged since: restore method, provenance, naming
            gap = float(m["mean_gap"])
            unit = v / norm * (1.0 if gap >= 0 else -1.0)
            dirs.append(
                Direction(
                    method=m["method"],
                    layer=m["layer"],
                    vector=unit,
                    raw_norm=float(m["raw_norm"]),
                    mean_gap=gap,
                    provenance=dict(m.get("provenance") or {}),
                    point=m["point"],
                    model_fingerprint=m.get("model_fingerprint"),
                )
            )
        else:
            dirs.append(
                Direction(
                    method=f"imported:{fmt}",
                    layer=site.layer,
                    vector=v / norm,
                    raw_norm=norm,
                    mean_gap=norm,
                    provenance=prov,
                    point=site.point,
                )
            )
    if not dirs:
        raise FormatError(f"The {fmt} file holds no vectors.")
    methods = {d.method for d in dirs}
    method = methods.pop() if len(methods) == 1 else f"imported:{fmt}"
    if len({d.method for d in dirs}) > 1:
        dirs = [
            Direction(
                method=method,
                layer=d.layer,
                vector=d.vector,
                raw_norm=d.raw_norm,
                mean_gap=d.mean_gap,
                provenance=d.provenance,
                point=d.point,
                model_fingerprint=d.model_fingerprint,
            )
            for d in dirs
        ]
    set_prov = (
        (meta or {}).get("provenance", prov)
        if meta
        and all(_matching(meta, site_of(n, convention), float(vectors[n].double().norm())) for n in vectors)
        else prov
    )
    return DirectionSet(method, dirs, dict(set_prov))


def model_type_of(dset: DirectionSet, given: str | None) -> str | None:
    """The model family (HF ``model_type``) a set was made for: ``given``, else one recorded in provenance."""
    if given:
        return given
    for prov in [dset.provenance] + [d.provenance for d in dset.directions]:
        if prov.get("model_type"):
            return str(prov["model_type"])
    return None
