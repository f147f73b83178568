"""Draw a pruned attribution graph: tokens left to right, depth bottom to top.

Each kept node sits at (its position, its layer): token embeddings on the bottom row, features
(circles, area ~ influence) and error nodes (grey squares) at their layer, the output logit(s)
on the top row above the last token. Edges: blue where the source *raises* the target, red
where it lowers it; line width ~ |weight| (relative to the largest kept edge). The most
influential features carry their label (from their top-activating contexts) or their id.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from safetyscope.report.plots import STYLE, save
from safetyscope.transcoders.prune import PrunedGraph


def _xy(kind: str, layer: int, position: int, n_layers: int, offset: float) -> tuple[float, float]:
    if kind == "embedding":
        return position, 0.0
    if kind == "logit":
        return position + offset, n_layers + 1.0
    return position + offset, layer + 1.0 + (0.25 if kind == "error" else 0.0)


def graph_figure(pruned: PrunedGraph, *, title: str = "", n_labels: int = 12) -> Figure:
    """A matplotlib figure of ``pruned`` (see the module docstring)."""
    g = pruned.graph
    n_layers = int(g.meta.get("n_layers", max([n.layer for n in g.nodes if n.kind != "logit"] + [0]) + 1))
    keep = pruned.node_mask.nonzero()[:, 0].tolist()
    shown = set(keep)
    # errors and embeddings with no kept edge are not drawn
    touched = set(pruned.edge_mask.nonzero()[:, 1].tolist()) | set(pruned.edge_mask.nonzero()[:, 0].tolist())
    shown = {i for i in shown if g.nodes[i].kind in ("feature", "logit") or i in touched}
    per_cell: dict[tuple[int, int, str], list[int]] = {}
    for i in sorted(shown):
        n = g.nodes[i]
        per_cell.setdefault((n.layer, n.position, n.kind), []).append(i)
    pos: dict[int, tuple[float, float]] = {}
    for (_layer, _p, _k), items in per_cell.items():
        for j, i in enumerate(items):
            off = (j - (len(items) - 1) / 2) * min(0.18, 0.8 / max(1, len(items)))
            n = g.nodes[i]
            pos[i] = _xy(n.kind, n.layer, n.position, n_layers, off)
    width = max(6.0, 0.75 * len(g.tokens) + 2)
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]
        fig = Figure(figsize=(width, 1.2 * n_layers + 3), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        edges = [(t, s) for t, s in pruned.edge_mask.nonzero().tolist() if t in pos and s in pos]
        wmax = max([abs(float(g.adjacency[t, s])) for t, s in edges] + [1e-12])
        for t, s in edges:
            w = float(g.adjacency[t, s])
            ax.plot(
                [pos[s][0], pos[t][0]],
                [pos[s][1], pos[t][1]],
                color="#2166ac" if w > 0 else "#b2182b",
                lw=0.3 + 3.0 * abs(w) / wmax,
                alpha=0.55,
                zorder=1,
            )
        imax = max([float(pruned.influence[i]) for i in pos] + [1e-12])
        for i, (x, y) in pos.items():
            n = g.nodes[i]
            if n.kind == "feature":
                ax.scatter(
                    [x],
                    [y],
                    s=30 + 220 * float(pruned.influence[i]) / imax,
                    color="#f4a582",
                    edgecolor="k",
                    lw=0.5,
                    zorder=2,
                )
            elif n.kind == "error":
                ax.scatter([x], [y], s=40, marker="s", color="#bbbbbb", edgecolor="k", lw=0.5, zorder=2)
            elif n.kind == "embedding":
                ax.scatter([x], [y], s=40, marker="^", color="#92c5de", edgecolor="k", lw=0.5, zorder=2)
            else:
                ax.scatter([x], [y], s=120, marker="D", color="#5aae61", edgecolor="k", lw=0.5, zorder=2)
                ax.annotate(
                    repr(n.label), (x, y), xytext=(0, 8), textcoords="offset points", ha="center", fontsize=8
                )
        feats = sorted(
            [i for i in pos if g.nodes[i].kind == "feature"], key=lambda i: -float(pruned.influence[i])
        )
        per_label_cell: dict[tuple[int, int], int] = {}
        for i in feats[:n_labels]:
            n = g.nodes[i]
            cell = (n.layer, n.position)
            j = per_label_cell.get(cell, 0)
            if j >= 3:  # at most three labels per (layer, position), stacked
                continue
            per_label_cell[cell] = j + 1
            text = (n.label or f"L{n.layer}#{n.feature}").split(" | ")[0][-28:]
            ax.annotate(
                text,
                pos[i],
                xytext=(6, 6 + 9 * j),
                textcoords="offset points",
                fontsize=6,
                zorder=3,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
            )
        ax.set_xticks(range(len(g.tokens)))
        ax.set_xticklabels([repr(t)[1:-1] for t in g.tokens], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n_layers + 2))
        ax.set_yticklabels(["emb", *[f"L{la}" for la in range(n_layers)], "logit"])
        ax.set_xlim(-0.7, len(g.tokens) - 0.3)
        ax.set_title(
            title
            or (
                f"attribution graph: explained share {pruned.explained_share:.2f}, "
                f"error share {pruned.error_share:.2f}"
            ),
            loc="left",
            fontsize=9,
        )
    return fig


def save_graph_figure(pruned: PrunedGraph, folder: Path, name: str = "graph", **kwargs: object) -> list[Path]:
    """Write ``folder/name.png`` and ``.svg``."""
    return save(graph_figure(pruned, **kwargs), folder, name, formats=("png", "svg"))  # type: ignore[arg-type]
