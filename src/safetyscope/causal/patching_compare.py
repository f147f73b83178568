"""How the choice of corruption changes a patching map: one sweep per corruption, compared cell by cell.

Each map is compared with a reference map (``pairs`` when it is run, else the first) over their
common cells (component, layer, position, head), on the normalised recovery (the raw metric
where the recovery is undefined):

* Spearman rank correlation ``ρ`` (ties get their average rank) and Pearson ``r``;
* top-k overlap: the share of the reference's ``k`` strongest cells (largest ``|effect|``) that
  are also among this map's ``k`` strongest, and whether the single strongest cell agrees.

The effect of a cell is ``|recovery|`` for denoising and ``|1 − recovery|`` for noising (how far
the patch moves the run from where it started).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from safetyscope.causal.corrupt import Corruption
from safetyscope.causal.patch_spec import PatchingError
from safetyscope.causal.patching import patching_sweep
from safetyscope.causal.patching_result import PatchingResult
from safetyscope.model.loading import LoadedModel

Cell = tuple[str, int, "int | None", "int | None"]


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    for v in x.unique():  # average ranks of ties
        m = x == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return ranks


def pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Pearson correlation; ``None`` when either side is constant or has fewer than 2 values."""
    if len(a) < 2:
        return None
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return None if den < 1e-15 else float((a * b).sum()) / den


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); ``None`` when undefined."""
    ta, tb = torch.tensor(list(a), dtype=torch.float64), torch.tensor(list(b), dtype=torch.float64)
    return pearson(_ranks(ta), _ranks(tb))


def cell_values(result: PatchingResult) -> dict[Cell, float]:
    """Each cell's recovery (or raw metric where the recovery is undefined)."""
    use_rec = all(s.recovery is not None for s in result.scores)
    return {
        (s.component, s.layer, s.position, s.head): float(s.recovery if use_rec else s.value)  # type: ignore[arg-type]
        for s in result.scores
    }


def _effects(vals: dict[Cell, float], mode: str) -> dict[Cell, float]:
    base = 0.0 if mode == "denoise" else 1.0
    return {c: abs(v - base) for c, v in vals.items()}


@dataclass
class MapComparison:
    """One corruption's map against the reference map."""

    corruption: str
    reference: str
    n_cells: int
    spearman: float | None
    pearson: float | None
    top_k: int
    top_k_overlap: float
    same_top_cell: bool
    top_cell: list[Any]
    clean_metric: float
    corrupted_metric: float


@dataclass
class CorruptionStudy:
    """Patching maps under several corruptions and their comparison with the reference."""

    results: dict[str, PatchingResult]
    comparisons: list[MapComparison]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (each map in full under ``maps``)."""
        return {
            "comparisons": [asdict(c) for c in self.comparisons],
            "maps": {k: r.to_dict() for k, r in self.results.items()},
            "provenance": self.provenance,
        }


def compare_maps(
    reference: PatchingResult,
    other: PatchingResult,
    top_k: int = 5,
    name: str | None = None,
    reference_name: str | None = None,
) -> MapComparison:
    """Compare ``other`` with ``reference`` over their common cells (see the module docstring)."""
    ra, rb = cell_values(reference), cell_values(other)
    cells = [c for c in ra if c in rb]
    if not cells:
        raise PatchingError("The two patching maps share no cell (component, layer, position, head).")
    ea, eb = _effects(ra, reference.mode), _effects(rb, other.mode)
    k = max(1, min(top_k, len(cells)))
    top_a = sorted(cells, key=lambda c: -ea[c])[:k]
    top_b = sorted(cells, key=lambda c: -eb[c])[:k]
    a = torch.tensor([ra[c] for c in cells], dtype=torch.float64)
    b = torch.tensor([rb[c] for c in cells], dtype=torch.float64)
    return MapComparison(
        name or other.corruption,
        reference_name or reference.corruption,
        len(cells),
        spearman(a.tolist(), b.tolist()),
        pearson(a, b),
        k,
        len(set(top_a) & set(top_b)) / k,
        top_a[0] == top_b[0],
        list(top_b[0]),
        other.clean_metric,
        other.corrupted_metric,
    )


def corruption_study(
    lm: LoadedModel,
    clean: Sequence[str],
    corrupt: Sequence[str] | None = None,
    *,
    corruptions: Sequence[str | Corruption] = ("pairs", "str", "gaussian", "zero", "mean", "resample"),
    top_k: int = 5,
    **sweep: Any,
) -> CorruptionStudy:
    """Run :func:`~safetyscope.causal.patching_sweep` once per corruption and compare the maps.

    ``corrupt`` (counterfactual pairs) is passed to ``pairs``, to ``str`` when it has no ``key``
    and to ``resample`` (which then draws from clean and counterfactual prompts); the other
    embedding corruptions run on the clean prompts alone. ``sweep`` holds the other
    :func:`patching_sweep` arguments (components, layers, positions, metric, mode, ...).
    """
    if not corruptions:
        raise PatchingError("Give at least one corruption to compare.")
    results: dict[str, PatchingResult] = {}
    for c in corruptions:
        corr = c if isinstance(c, Corruption) else Corruption(c)
        pairs = (
            corrupt
            if corr.kind in ("pairs", "resample") or (corr.kind == "str" and corr.key is None)
            else None
        )
        results[corr.kind] = patching_sweep(lm, clean, pairs, corruption=corr, **sweep)
    ref = "pairs" if "pairs" in results else next(iter(results))
    comps = [compare_maps(results[ref], r, top_k, name, ref) for name, r in results.items()]
    prov = {
        "reference": ref,
        "corruptions": list(results),
        "top_k": top_k,
        "seconds": {k: r.provenance.get("seconds") for k, r in results.items()},
    }
    return CorruptionStudy(results, comps, prov)
