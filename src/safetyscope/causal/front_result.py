"""Results of the robustness front: every trial, the front's generation checks, the worst case per KL level."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetyscope.causal.arms import ArmResult
from safetyscope.causal.front import FrontParams, TrialScore

RESULTS_FILE = "results.json"
KL_LEVELS = (0.1, 0.5)


@dataclass
class FrontCheck:
    """A front point (or the baseline / control) generated and judged on the test split."""

    name: str
    number: int | None
    params: FrontParams | None
    search_refusal: float | None
    search_kl: float | None
    result: ArmResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return {
            "name": self.name,
            "number": self.number,
            "params": self.params.to_dict() if self.params else None,
            "search_refusal": self.search_refusal,
            "search_kl": self.search_kl,
            "result": self.result.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontCheck:
        """Inverse of :meth:`to_dict`."""
        return cls(
            d["name"],
            d["number"],
            FrontParams.from_dict(d["params"]) if d["params"] else None,
            d["search_refusal"],
            d["search_kl"],
            ArmResult.from_dict(d["result"]),
        )


@dataclass
class RobustnessFront:
    """Every trial, the front, its generation checks, and the worst case at each KL level."""

    trials: list[TrialScore]
    checks: list[FrontCheck]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def front(self) -> list[TrialScore]:
        """Pareto-optimal trials, by increasing KL."""
        return sorted((t for t in self.trials if t.on_front), key=lambda t: (t.kl, t.refusal))

    def worst_case(self, max_kl: float) -> dict[str, Any] | None:
        """The checked point with the lowest judged refusal whose generation-measured first-token KL is ≤ ``max_kl``."""
        ok = [
            c
            for c in self.checks
            if c.number is not None
            and c.result.kl_first_token is not None
            and c.result.kl_first_token <= max_kl
        ]
        if not ok:
            return None
        best = min(ok, key=lambda c: (c.result.refusal["harmful"].rate or 0.0, c.result.kl_first_token))
        return {
            "max_kl": max_kl,
            "number": best.number,
            "refusal": best.result.refusal["harmful"].to_dict(),
            "kl_first_token": best.result.kl_first_token,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return {
            "trials": [t.to_dict() for t in self.trials],
            "front": [t.number for t in self.front],
            "checks": [c.to_dict() for c in self.checks],
            "worst_case": {str(k): self.worst_case(k) for k in KL_LEVELS},
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RobustnessFront:
        """Inverse of :meth:`to_dict`."""
        return cls(
            [TrialScore.from_dict(t) for t in d["trials"]],
            [FrontCheck.from_dict(c) for c in d["checks"]],
            dict(d.get("provenance", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> RobustnessFront:
        """Read ``results.json`` (a folder or the file)."""
        p = Path(path)
        return cls.from_dict(json.loads((p / RESULTS_FILE if p.is_dir() else p).read_text()))


def spread(front: list[TrialScore], k: int) -> list[TrialScore]:
    """Up to ``k`` front points evenly spaced along the front (by KL order), both ends included."""
    if len(front) <= k:
        return list(front)
    idx = sorted({round(i * (len(front) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]
    return [front[i] for i in idx]
