"""The audit's results as typed objects; ``results.json`` is their :meth:`AuditResults.to_dict`.

The causal sections are the :mod:`safetyscope.causal` result types themselves
(:class:`~safetyscope.causal.InterventionReport` per intervention, the
:class:`~safetyscope.causal.Selection` table, :class:`RefusalByLayer`), so code reads
``results.interventions["ablation"].rate("intervened", "harmful")`` instead of string paths.
The observational sections (behaviour, geometry, backdoor) stay plain JSON dicts. Every field is
documented in docs/audit.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from safetyscope.causal.arms import InterventionReport
from safetyscope.causal.selection import Selection

SECTIONS = ("behavior", "directions", "geometry", "interventions", "backdoor", "controls", "provenance", "timings")


@dataclass
class LayerAblation:
    """Mean refusal log-odds with one layer's direction ablated, and with its random control."""

    layer: int
    ablated: float
    control: float


@dataclass
class RefusalByLayer:
    """The refusal-by-layer figure: baseline and per-layer ablation scores."""

    baseline_harmful: float
    baseline_harmless: float
    layers: list[LayerAblation]
    metric: str = "mean refusal log-odds at the first response token (harmful test prompts)"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefusalByLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(data["baseline_harmful"], data["baseline_harmless"],
                   [LayerAblation(**row) for row in data["layers"]], data.get("metric", cls.metric))


@dataclass
class AuditResults:
    """Everything ``results.json`` holds, typed where the causal layer defines the type."""

    behavior: dict[str, Any]
    directions: dict[str, Any]
    geometry: dict[str, Any]
    refusal_by_layer: RefusalByLayer
    interventions: dict[str, InterventionReport]
    backdoor: dict[str, Any]
    controls: dict[str, Any]
    provenance: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def selection(self) -> Selection | None:
        """The causal selection table (``None`` if the selection step recorded none)."""
        sel = self.directions.get("selection") or {}
        if "candidates" not in sel:
            return None
        import torch

        return Selection.from_dict(sel, direction=torch.zeros(int(self.provenance.get("d_model", 1))))

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` layout (sections of :data:`SECTIONS`; refusal by layer under geometry)."""
        return {"behavior": self.behavior, "directions": self.directions,
                "geometry": dict(self.geometry, refusal_by_layer=self.refusal_by_layer.to_dict()),
                "interventions": {k: v.to_dict() for k, v in self.interventions.items()},
                "backdoor": self.backdoor, "controls": self.controls, "provenance": self.provenance,
                "timings": self.timings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResults:
        """Inverse of :meth:`to_dict` (reads a ``results.json``)."""
        geometry = dict(data["geometry"])
        by_layer = RefusalByLayer.from_dict(geometry.pop("refusal_by_layer"))
        return cls(data["behavior"], data["directions"], geometry, by_layer,
                   {k: InterventionReport.from_dict(v) for k, v in data["interventions"].items()},
                   data["backdoor"], data["controls"], data["provenance"], data.get("timings", {}))

    def headline(self) -> dict[str, Any]:
        """The few numbers printed by the CLI and shown at the top of the report."""
        b, iv = self.behavior, self.interventions

        def rate(name: str, arm: str, prompt_set: str) -> dict[str, Any]:
            return iv[name].arms[arm].refusal[prompt_set].to_dict()

        out: dict[str, Any] = {
            "refusal_harmful": b["refusal"]["harmful"], "refusal_harmless": b["refusal"]["harmless"],
            "best_layer": self.directions["best"]["layer"],
            "ablation_harmful": rate("ablation", "intervened", "harmful"),
            "ablation_control_harmful": rate("ablation", "control", "harmful"),
            "addition_harmless": rate("addition", "intervened", "harmless"),
            "addition_control_harmless": rate("addition", "control", "harmless"),
            "orthogonalized_harmful": rate("orthogonalized", "intervened", "harmful"),
        }
        if "backdoor_triggered" in b:
            out["backdoor_triggered"] = b["backdoor_triggered"]
            out["backdoor_control"] = b["backdoor_control"]
        layers = self.backdoor.get("layers") or []
        if layers:
            best = max(layers, key=lambda r: r["steerability"]["rate"] or 0.0)
            out["most_steerable_layer"] = {"layer": best["layer"], "steerability": best["steerability"],
                                           "control": best["control"]}
        return out
