"""Directions in the residual stream as results: unit vector, natural magnitude, provenance.

A :class:`Direction` is one unit vector read at one :class:`~safetyscope.activations.Site`
(layer + stream point; optionally with an orthonormal basis for a k-dimensional subspace) of
one model (its fingerprint); a :class:`DirectionSet` holds one per layer for one method. Both
save to a single ``.safetensors`` file (tensors) whose metadata holds the JSON description, and
both round-trip through plain dicts (:meth:`Direction.to_dict`) for JSON reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from safetyscope.activations.sites import STREAM_POINTS, Site
from safetyscope.directions.checks import DirectionError

_META_KEY = "safetyscope.directions"


@dataclass
class Direction:
    """A unit direction at one layer.

    Attributes:
        method: the extraction method (a key of :data:`safetyscope.directions.METHODS`).
        layer: the layer it was read at (``None`` when extracted from one ``[n, d]`` matrix).
        vector: ``[d]`` unit vector (float64), oriented so harmful activations project higher.
        raw_norm: the norm of the method's vector before normalisation (the difference of
            means for ``diff_means``; see each method for its meaning).
        mean_gap: ``(μ_harmful - μ_harmless) · vector``: adding ``mean_gap * vector`` to a
            harmless activation moves it onto the harmful mean along this direction, the
            natural steering magnitude for every method.
        basis: ``[k, d]`` orthonormal rows spanning a subspace (``basis[0] == vector``), or
            ``None`` for a single direction.
        provenance: method options, row counts, upstream model/prompt provenance, version.
        point: the stream point it was read at (``resid_pre``, ``resid_post``, ...); with
            ``layer`` it makes :attr:`site`, where interventions write it back by default.
        model_fingerprint: fingerprint of the model it was read from (``None`` if unknown).
    """

    method: str
    layer: int | None
    vector: Float[Tensor, " d"]
    raw_norm: float
    mean_gap: float
    basis: Float[Tensor, "k d"] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    point: str | None = None
    model_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.point is not None and self.point not in STREAM_POINTS:
            raise DirectionError(f"Unknown stream point {self.point!r}; use one of {STREAM_POINTS}.")

    @property
    def site(self) -> Site | None:
        """Where it was read (``None`` when the layer or stream point is unknown)."""
        if self.layer is None or self.point is None:
            return None
        return Site(self.layer, self.point)  # type: ignore[arg-type]

    def at_site(self, site: Site) -> Direction:
        """A copy recording ``site`` as where it was read."""
        from dataclasses import replace

        return replace(self, layer=site.layer, point=site.point)

    @property
    def d(self) -> int:
        """Width of the residual stream."""
        return int(self.vector.shape[0])

    @property
    def rank(self) -> int:
        """1 for a direction, ``k`` for a subspace."""
        return 1 if self.basis is None else int(self.basis.shape[0])

    def cosine(self, other: Direction | Tensor) -> float:
        """Cosine similarity of this vector with another direction or vector."""
        w = other.vector if isinstance(other, Direction) else other.to(torch.float64)
        return float(self.vector @ w / (self.vector.norm() * w.norm()))

    def project(self, x: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """Scalar projection ``x · vector`` of each row."""
        return x.to(torch.float64) @ self.vector

    def meta(self) -> dict[str, Any]:
        """Everything except the tensors, JSON-serialisable."""
        site = self.site
        return {"method": self.method, "layer": self.layer, "point": self.point,
                "site": None if site is None else site.key, "model_fingerprint": self.model_fingerprint,
                "raw_norm": self.raw_norm, "mean_gap": self.mean_gap, "rank": self.rank, "d": self.d,
                "provenance": self.provenance}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict including the vector (and basis) as lists."""
        out = self.meta() | {"vector": self.vector.tolist()}
        if self.basis is not None:
            out["basis"] = self.basis.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Direction:
        """Inverse of :meth:`to_dict`."""
        basis = data.get("basis")
        return cls(
            method=data["method"], layer=data["layer"],
            vector=torch.tensor(data["vector"], dtype=torch.float64),
            raw_norm=float(data["raw_norm"]), mean_gap=float(data["mean_gap"]),
            basis=None if basis is None else torch.tensor(basis, dtype=torch.float64),
            provenance=dict(data.get("provenance", {})),
            point=_point(data), model_fingerprint=_fingerprint(data),
        )

    def save(self, path: str | Path) -> Path:
        """Write to one ``.safetensors`` file (a set of one direction)."""
        return DirectionSet(self.method, [self], dict(self.provenance)).save(path)

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        """Read a file written by :meth:`save` (or a one-direction :class:`DirectionSet`)."""
        dset = DirectionSet.load(path)
        if len(dset.directions) != 1:
            raise DirectionError(f"{path} holds {len(dset.directions)} directions; use DirectionSet.load.")
        return dset.directions[0]


@dataclass
class DirectionSet:
    """One direction per layer, all from the same method.

    Attributes:
        method: the extraction method.
        directions: the directions, in increasing layer order.
        provenance: shared provenance (method options, inputs, version).
    """

    method: str
    directions: list[Direction]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = [d.layer for d in self.directions]
        if len(set(layers)) != len(layers):
            raise DirectionError(f"Duplicate layers in a direction set: {layers}.")

    def __iter__(self) -> Iterator[Direction]:
        return iter(self.directions)

    def __len__(self) -> int:
        return len(self.directions)

    @property
    def layers(self) -> list[int | None]:
        """The layer of each direction, in order."""
        return [d.layer for d in self.directions]

    def at(self, layer: int) -> Direction:
        """The direction read at ``layer``."""
        for d in self.directions:
            if d.layer == layer:
                return d
        raise DirectionError(f"No direction at layer {layer}; layers: {self.layers}.")

    def vectors(self) -> Float[Tensor, "layers d"]:
        """All unit vectors stacked ``[n_layers, d]``."""
        return torch.stack([d.vector for d in self.directions])

    def raw_norms(self) -> list[float]:
        """The pre-normalisation norm of each layer's vector."""
        return [d.raw_norm for d in self.directions]

    def save(self, path: str | Path) -> Path:
        """Write all vectors (and bases) plus the JSON description to one ``.safetensors`` file."""
        # Cloned: safetensors refuses tensors that share memory (a vector that is a row of its own
        # basis, or one tensor used by two directions).
        tensors: dict[str, Tensor] = {}
        for i, d in enumerate(self.directions):
            tensors[f"d{i}.vector"] = d.vector.detach().clone()
            if d.basis is not None:
                tensors[f"d{i}.basis"] = d.basis.detach().clone()
        meta = {"method": self.method, "provenance": self.provenance,
                "directions": [d.meta() for d in self.directions]}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from safetyscope.outputs import atomic_file

        with atomic_file(path) as tmp:  # a failed write leaves neither a partial file nor *.tmp debris
            save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> DirectionSet:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DirectionError(f"No such directions file: {path}.")
        with safe_open(str(path), "pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            if raw is None:
                raise DirectionError(f"{path} is not a safetyscope directions file (no '{_META_KEY}' metadata).")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
        meta = json.loads(raw)
        dirs = [
            Direction(method=m["method"], layer=m["layer"], vector=tensors[f"d{i}.vector"],
                      raw_norm=m["raw_norm"], mean_gap=m["mean_gap"], basis=tensors.get(f"d{i}.basis"),
                      provenance=m.get("provenance", {}), point=_point(m), model_fingerprint=_fingerprint(m))
            for i, m in enumerate(meta["directions"])
        ]
        return cls(meta["method"], dirs, meta.get("provenance", {}))

    @classmethod
    def from_directions(cls, directions: Sequence[Direction]) -> DirectionSet:
        """Group directions of one method (any layer order) into a set."""
        methods = {d.method for d in directions}
        if len(methods) != 1:
            raise DirectionError(f"A direction set holds one method; got {sorted(methods)}.")
        ordered = sorted(directions, key=lambda d: -1 if d.layer is None else d.layer)
        return cls(methods.pop(), ordered, dict(ordered[0].provenance))


def _point(meta: dict[str, Any]) -> str | None:
    """The stream point of saved metadata; files from before sites were recorded fall back to their provenance."""
    if meta.get("point"):
        return str(meta["point"])
    if meta.get("layer") is None:
        return None
    prov = meta.get("provenance") or {}
    sites = prov.get("sites") or (prov.get("harmful") or {}).get("sites") or []
    points = {str(k).split(".", 1)[1] for k in sites if "." in str(k)}
    if len(points) == 1:
        return points.pop()
    if prov.get("selection") is not None or prov.get("eoi_position") is not None:
        return "resid_pre"  # `directions select` read resid_pre before sites were recorded
    return None


def _fingerprint(meta: dict[str, Any]) -> str | None:
    if meta.get("model_fingerprint"):
        return str(meta["model_fingerprint"])
    prov = meta.get("provenance") or {}
    found = prov.get("model_fingerprint") or (prov.get("harmful") or {}).get("model_fingerprint")
    return None if found is None else str(found)
