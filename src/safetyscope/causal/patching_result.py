"""The result of an activation-patching sweep: scores per cell, baselines and provenance, as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetyscope.causal.patch_spec import PatchingError


@dataclass(frozen=True)
class PatchScore:
    """One cell: the metric (mean over prompt pairs) with that component patched.

    Attributes:
        component: ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` or ``heads``.
        layer: block index.
        position: token index of the slot in the first clean prompt (``None``: every selected
            position patched at once).
        head: head index for ``heads``, else ``None``.
        value: the metric of the patched run, averaged over prompt pairs.
        recovery: ``(value − corrupted) / (clean − corrupted)``; ``None`` if clean = corrupted.
    """

    component: str
    layer: int
    position: int | None
    head: int | None
    value: float
    recovery: float | None = None


def _num(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


@dataclass
class PatchingResult:
    """A sweep's scores with the clean and corrupted baselines and what produced them.

    ``positions`` and ``position_labels`` describe the slots (token index and token text in the
    first clean prompt); ``provenance`` holds the model fingerprint, prompt hashes, mode,
    metric, corruption, seed and package version.
    """

    scores: list[PatchScore]
    clean_metric: float
    corrupted_metric: float
    metric: str
    mode: str
    corruption: str
    positions: list[int]
    position_labels: list[str]
    n_pairs: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def grid(self, component: str, head: int | None = None, recovery: bool = False) -> list[list[float | None]]:
        """``layers × slots`` matrix of one component (and head); missing cells are ``None``."""
        layers = self.layers(component)
        cols: list[int | None] = list(self.positions) if any(
            s.position is not None for s in self.scores) else [None]
        index = {(s.layer, s.position): (s.recovery if recovery else s.value) for s in self.scores
                 if s.component == component and s.head == head}
        return [[index.get((layer, p)) for p in cols] for layer in layers]

    def layers(self, component: str) -> list[int]:
        """Layers scored for ``component``, ascending."""
        return sorted({s.layer for s in self.scores if s.component == component})

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form (non-finite floats become ``None``)."""
        d = asdict(self)
        d["scores"] = [dict(asdict(s), value=_num(s.value), recovery=_num(s.recovery)) for s in self.scores]
        d["clean_metric"], d["corrupted_metric"] = _num(self.clean_metric), _num(self.corrupted_metric)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatchingResult:
        """Inverse of :meth:`to_dict`."""
        try:
            scores = [PatchScore(**s) for s in data["scores"]]
            rest = {k: v for k, v in data.items() if k != "scores"}
            return cls(scores=scores, **rest)
        except (KeyError, TypeError) as exc:
            raise PatchingError(f"Not a patching result: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write ``results.json``-style JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PatchingResult:
        """Read a result written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise PatchingError(f"Cannot read patching result {path}: {exc}") from exc
