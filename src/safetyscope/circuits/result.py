"""The result of :func:`safetyscope.circuits.attribute`: a scored graph, its top circuit and faithfulness."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class AttributionResult:
    """Scores, the evaluated circuit and provenance; round-trips through JSON.

    Attributes:
        method: ``atp``, ``eap``, ``eap-ig`` or ``exact``.
        metric: the metric's JSON form.
        clean_metric, corrupt_metric: mean metric of the clean and corrupted runs.
        graph: :meth:`Graph.to_dict` (``info``, ``nodes``, ``edges`` with ``src``, ``dst``, ``score``).
        top: size of the reported circuit (edges; nodes for ``atp``).
        circuit: ``k``, ``sufficiency``, ``necessity``, random controls, ``cpr``, ``cmd``.
        faithfulness: ``[{n_edges, value}]`` over circuit sizes.
        seconds: time spent scoring (without the evaluation).
        nodes: AtP node scores (``atp`` only).
    """

    method: str
    metric: dict[str, Any]
    clean_metric: float
    corrupt_metric: float
    graph: dict[str, Any]
    top: int
    circuit: dict[str, Any]
    faithfulness: list[dict[str, Any]]
    seconds: float
    nodes: list[dict[str, Any]] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def top_edges(self, n: int | None = None) -> list[dict[str, Any]]:
        """Edges by decreasing |score| (the first ``n``)."""
        edges = [e for e in self.graph["edges"] if e["score"] is not None]
        edges.sort(key=lambda e: -abs(e["score"]))
        return edges[:n] if n is not None else edges

    def summary(self) -> dict[str, Any]:
        """The ``--json`` contract: ``edges`` (``{src, dst, score}``), ``faithfulness``, ``method``, ``seconds``."""
        return {
            "method": self.method,
            "seconds": self.seconds,
            "edges": self.top_edges(),
            "faithfulness": self.faithfulness,
            "circuit": self.circuit,
            "nodes": self.nodes,
            "clean_metric": self.clean_metric,
            "corrupt_metric": self.corrupt_metric,
            "metric": self.metric,
            "graph_info": self.graph["info"],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributionResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``graph.json`` (every scored edge), ``circuit.json`` (top edges, controls), ``faithfulness.json``
        and ``top_edges.svg`` into ``folder``; return the paths."""
        from safetyscope.circuits.figure import edge_figure

        folder = Path(folder)
        paths = {k: folder / f"{k}.json" for k in ("graph", "circuit", "faithfulness")}
        paths["graph"].write_text(json.dumps(self.to_dict(), allow_nan=False), encoding="utf-8")
        paths["circuit"].write_text(
            json.dumps(
                {
                    "method": self.method,
                    "top": self.top,
                    **self.circuit,
                    "edges": self.top_edges(self.top),
                    "nodes": self.nodes,
                },
                allow_nan=False,
                indent=1,
            ),
            encoding="utf-8",
        )
        paths["faithfulness"].write_text(
            json.dumps(self.faithfulness, allow_nan=False, indent=1), encoding="utf-8"
        )
        paths["figure"] = folder / "top_edges.svg"
        paths["figure"].write_text(edge_figure(self), encoding="utf-8")
        return paths

    @classmethod
    def load(cls, path: str | Path) -> AttributionResult:
        """Read a ``graph.json`` written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
