"""The audit's results as typed objects; ``results.json`` is their :meth:`AuditResults.to_dict`.

The causal sections are the :mod:`safetyscope.causal` result types themselves
(:class:`~safetyscope.causal.InterventionReport` per intervention, the
:class:`~safetyscope.causal.Selection` table, :class:`RefusalByLayer`), so code reads
``results.interventions["ablation"].rate("intervened", "harmful")`` instead of string paths.
The observational sections (behaviour, geometry, backdoor) stay plain JSON dicts. A section that
was turned off is ``None``; sections added by other modules live in ``extra`` (typed by their
section's ``result_type``). Every field is documented in docs/audit.md; the JSON Schema is
``safetyscope/pipelines/audit_schema.json`` (``safetyscope audit schema``).

Schema versions: 1 (no ``schema_version`` key) nested ``refusal_by_layer`` inside ``geometry``
and had no ``verdict``; :meth:`AuditResults.from_dict` still reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from safetyscope.causal.arms import InterventionReport
from safetyscope.causal.selection import Selection
from safetyscope.pipelines.sections.base import Claim

#: Version of the ``results.json`` layout (bumped on any incompatible change).
SCHEMA_VERSION = 2
SECTIONS = (
    "behavior",
    "directions",
    "geometry",
    "refusal_by_layer",
    "interventions",
    "backdoor",
    "controls",
    "provenance",
    "timings",
)
BUILTIN_SECTIONS = ("behavior", "directions", "geometry", "refusal_by_layer", "interventions", "backdoor")


@dataclass
class LayerAblation:
    """Mean refusal log-odds with one layer's direction ablated, and with its random control.

    ``*_ci`` are 95% normal intervals of the mean over prompts (``None`` in results of schema 1).
    """

    layer: int
    ablated: float
    control: float
    ablated_ci: list[float] | None = None
    control_ci: list[float] | None = None


@dataclass
class RefusalByLayer:
    """The refusal-by-layer figure: baseline and per-layer ablation scores."""

    baseline_harmful: float
    baseline_harmless: float
    layers: list[LayerAblation]
    metric: str = "mean refusal log-odds at the first response token (harmful test prompts)"
    baseline_harmful_ci: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefusalByLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["baseline_harmful"],
            data["baseline_harmless"],
            [LayerAblation(**row) for row in data["layers"]],
            data.get("metric", cls.metric),
            data.get("baseline_harmful_ci"),
        )


@dataclass
class AuditResults:
    """Everything ``results.json`` holds, typed where the causal layer defines the type."""

    behavior: dict[str, Any]
    directions: dict[str, Any]
    geometry: dict[str, Any] | None
    refusal_by_layer: RefusalByLayer | None
    interventions: dict[str, InterventionReport] | None
    backdoor: dict[str, Any] | None
    controls: dict[str, Any]
    provenance: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)
    verdict: list[Claim] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def selection(self) -> Selection | None:
        """The causal selection table (``None`` if the selection step recorded none)."""
        sel = self.directions.get("selection") or {}
        if "candidates" not in sel:
            return None
        import torch

        return Selection.from_dict(sel, direction=torch.zeros(int(self.provenance.get("d_model", 1))))

    def section(self, name: str) -> Any:
        """A section's typed result by name (``None`` when it was not run)."""
        if name in BUILTIN_SECTIONS:
            return getattr(self, name)
        return self.extra.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` layout: ``schema_version``, ``sections``, ``verdict``, then one key per section."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "sections": list(self.sections),
            "verdict": [c.to_dict() for c in self.verdict],
            "behavior": self.behavior,
            "directions": self.directions,
        }
        if self.geometry is not None:
            out["geometry"] = self.geometry
        if self.refusal_by_layer is not None:
            out["refusal_by_layer"] = self.refusal_by_layer.to_dict()
        if self.interventions is not None:
            out["interventions"] = {k: v.to_dict() for k, v in self.interventions.items()}
        if self.backdoor is not None:
            out["backdoor"] = self.backdoor
        for k, v in self.extra.items():
            out[k] = v.to_dict() if hasattr(v, "to_dict") else v
        out.update(controls=self.controls, provenance=self.provenance, timings=self.timings)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResults:
        """Inverse of :meth:`to_dict` (reads a ``results.json`` of schema 1 or 2)."""
        version = int(data.get("schema_version", 1))
        if version > SCHEMA_VERSION:
            from safetyscope.errors import SafetyscopeError

            raise SafetyscopeError(
                f"results.json has schema_version {version}; this safetyscope reads up to "
                f"{SCHEMA_VERSION}. Upgrade safetyscope."
            )
        geometry = dict(data["geometry"]) if data.get("geometry") is not None else None
        by_layer = data.get("refusal_by_layer")
        if by_layer is None and geometry is not None and "refusal_by_layer" in geometry:  # schema 1
            by_layer = geometry.pop("refusal_by_layer")
        iv = data.get("interventions")
        known = {"schema_version", "sections", "verdict", *SECTIONS}
        extra: dict[str, Any] = {}
        if any(k not in known for k in data):
            from safetyscope.pipelines.sections import registry

            reg = registry()
            for k, v in data.items():
                if k not in known:
                    rt = reg[k].result_type if k in reg else None
                    extra[k] = rt.from_dict(v) if rt is not None and v is not None else v
        sections = list(
            data.get("sections")
            or [
                s
                for s in BUILTIN_SECTIONS
                if data.get(s) is not None or (s == "refusal_by_layer" and by_layer is not None)
            ]
        )
        return cls(
            data["behavior"],
            data["directions"],
            geometry,
            RefusalByLayer.from_dict(by_layer) if by_layer is not None else None,
            {k: InterventionReport.from_dict(v) for k, v in iv.items()} if iv is not None else None,
            data.get("backdoor"),
            data.get("controls", {}),
            data.get("provenance", {}),
            data.get("timings", {}),
            [Claim.from_dict(c) for c in data.get("verdict", [])],
            sections,
            extra,
            version if version >= 2 else SCHEMA_VERSION,
        )

    def headline(self) -> dict[str, Any]:
        """The few numbers printed by the CLI (and compared by ``audit compare``); absent sections are left out."""
        b, iv = self.behavior, self.interventions or {}

        def rate(name: str, arm: str, prompt_set: str) -> dict[str, Any] | None:
            if name not in iv or arm not in iv[name].arms:
                return None
            r = iv[name].arms[arm].refusal.get(prompt_set)
            return r.to_dict() if r is not None else None

        out: dict[str, Any] = {
            "refusal_harmful": b["refusal"]["harmful"],
            "refusal_harmless": b["refusal"]["harmless"],
            "best_layer": self.directions["best"]["layer"],
        }
        if iv:
            out.update(
                ablation_harmful=rate("ablation", "intervened", "harmful"),
                ablation_control_harmful=rate("ablation", "control", "harmful"),
                addition_harmless=rate("addition", "intervened", "harmless"),
                addition_control_harmless=rate("addition", "control", "harmless"),
                orthogonalized_harmful=rate("orthogonalized", "intervened", "harmful"),
                orthogonalized_control_harmful=rate("orthogonalized", "control", "harmful"),
            )
        if "backdoor_triggered" in b:
            out["backdoor_triggered"] = b["backdoor_triggered"]
            out["backdoor_control"] = b["backdoor_control"]
        layers = (self.backdoor or {}).get("layers") or []
        if layers:
            best = max(layers, key=lambda r: r["steerability"]["rate"] or 0.0)
            out["most_steerable_layer"] = {
                "layer": best["layer"],
                "steerability": best["steerability"],
                "control": best["control"],
            }
        return out
