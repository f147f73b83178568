"""An SVG of a circuit's top edges: nodes in columns by depth, edges coloured by sign, width by |score|.

Columns run left to right: the input, then per block its attention (heads stacked by index) and
its MLP, then the logits. Blue edges *lower* the metric when corrupted (the clean behaviour flows
through them); red edges raise it. A receiver suffix (``<q>``, ``<k>``, ``<v>``) is shown as the
letter at the arrow's end.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

W, H, PAD = 900, 480, 40


def _place(name: str, n_layers: int, n_rows: int) -> tuple[float, float]:
    """Pixel position of a node name (``input``, ``a3.h2``, ``a3.kv1``, ``a3``, ``m3``, ``logits``)."""
    cols = 2 * n_layers + 2

    def x(col: int) -> float:
        return PAD + (W - 2 * PAD) * col / (cols - 1)

    mid = H / 2
    if name == "input":
        return x(0), mid
    if name == "logits":
        return x(cols - 1), mid
    m = re.fullmatch(r"([am])(\d+)(?:\.(h|kv)(\d+))?", name)
    if m is None:
        return x(0), PAD
    layer = int(m[2])
    if m[1] == "m":
        return x(2 * layer + 2), mid
    row = int(m[4]) if m[4] is not None else (n_rows - 1) / 2
    return x(2 * layer + 1), PAD + (H - 2 * PAD) * (row + 0.5) / max(1, n_rows)


def edge_figure(result: Any, n: int | None = None) -> str:
    """SVG of the ``n`` (default ``result.top``) edges of largest |score| of an :class:`AttributionResult`."""
    info = result.graph["info"]
    edges = result.top_edges(n or result.top)
    title = f"{result.method}: top {len(edges)} of {info['n_edges']} edges ({info['family']})"
    parts = [
        f'<svg viewBox="0 0 {W} {H + 30}" width="{W}" height="{H + 30}" role="img" aria-label="{escape(title)}">'
        f'<title>{escape(title)}</title><rect width="{W}" height="{H + 30}" fill="#fff"/>'
        f'<text x="{W / 2}" y="18" font-size="13" text-anchor="middle">{escape(title)}</text>'
    ]
    if not edges:
        parts.append(
            f'<text x="{W / 2}" y="{H / 2}" font-size="12" text-anchor="middle">no scored edges</text></svg>'
        )
        return "".join(parts)
    top = max(abs(e["score"]) for e in edges) or 1.0
    rows = info["n_heads"]
    nodes: dict[str, tuple[float, float]] = {}
    for e in edges:
        dst, _, kind = e["dst"].partition("<")
        (x1, y1), (x2, y2) = _place(e["src"], info["n_layers"], rows), _place(dst, info["n_layers"], rows)
        nodes[e["src"]], nodes[dst] = (x1, y1), (x2, y2)
        colour = "#1f77b4" if e["score"] < 0 else "#d62728"
        width = 0.5 + 4.5 * abs(e["score"]) / top
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1 + 20:.1f}" x2="{x2:.1f}" y2="{y2 + 20:.1f}" stroke="{colour}" '
            f'stroke-width="{width:.2f}" stroke-opacity="0.7"><title>{escape(e["src"])} → '
            f"{escape(e['dst'])}: {e['score']:.4g}</title></line>"
        )
        if kind:
            parts.append(
                f'<text x="{x2 - 10:.1f}" y="{y2 + 16:.1f}" font-size="9" fill="{colour}">'
                f"{escape(kind.rstrip('>'))}</text>"
            )
    for name, (x, y) in nodes.items():
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y + 20:.1f}" r="5" fill="#333"/>'
            f'<text x="{x + 7:.1f}" y="{y + 24:.1f}" font-size="10">{escape(name)}</text>'
        )
    parts.append(
        f'<text x="{PAD}" y="{H + 26}" font-size="10">blue: corrupting the edge lowers the metric; '
        "red: raises it; width: |score|</text></svg>"
    )
    return "".join(parts)
