"""Inline SVG figures drawn from plain numbers: line charts, bar charts and a heatmap.

Every function returns one ``<svg>`` element as a string, with all text XML-escaped, no
scripts and no external references, so a report embedding them renders offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#7f7f7f", "#2ca02c", "#9467bd", "#ff7f0e")
W, H, ML, MR, MT, MB = 640, 300, 56, 210, 16, 44


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label, y values (``None`` = gap) and an optional dash pattern."""

    label: str
    y: Sequence[float | None]
    dashed: bool = False


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _range(values: Sequence[float], lo: float | None, hi: float | None) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    a = lo if lo is not None else (min(vals) if vals else 0.0)
    b = hi if hi is not None else (max(vals) if vals else 1.0)
    if b - a < 1e-12:
        a, b = a - 0.5, b + 0.5
    return a, b


def _frame(title: str, xlabel: str, ylabel: str, x: Sequence[float], y0: float, y1: float) -> list[str]:
    pw, ph = W - ML - MR, H - MT - MB
    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>']
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        yy = MT + ph - ph * i / 4
        parts.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>'
                     f'<text x="{ML - 4}" y="{yy + 4:.1f}" font-size="10" text-anchor="end">{_fmt(v)}</text>')
    step = max(1, math.ceil(len(x) / 12))
    for i, xv in enumerate(x):
        if i % step == 0:
            parts.append(f'<text x="{_xpos(i, len(x)):.1f}" y="{MT + ph + 14}" font-size="10" '
                         f'text-anchor="middle">{escape(str(xv))}</text>')
    parts.append(f'<text x="{ML + pw / 2}" y="{H - 8}" font-size="11" text-anchor="middle">{escape(xlabel)}</text>'
                 f'<text x="14" y="{MT + ph / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {MT + ph / 2})">{escape(ylabel)}</text>')
    return parts


def _xpos(i: int, n: int) -> float:
    pw = W - ML - MR
    return ML + (pw * (i + 0.5) / n)


def _ypos(v: float, y0: float, y1: float) -> float:
    ph = H - MT - MB
    return MT + ph - ph * (v - y0) / (y1 - y0)


def _legend(labels: Sequence[tuple[str, str, bool]]) -> list[str]:
    out = []
    for i, (label, color, dashed) in enumerate(labels):
        y = MT + 10 + 16 * i
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<line x1="{W - MR + 8}" x2="{W - MR + 26}" y1="{y}" y2="{y}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{W - MR + 30}" y="{y + 4}" font-size="10">{escape(label)}</text>')
    return out


def line_chart(title: str, x: Sequence[float], series: Sequence[Series], *, xlabel: str = "layer",
               ylabel: str = "", ymin: float | None = None, ymax: float | None = None) -> str:
    """A line chart of ``series`` over categorical ``x`` (e.g. layers), with a legend."""
    y0, y1 = _range([v for s in series for v in s.y if v is not None], ymin, ymax)
    parts = _frame(title, xlabel, ylabel, x, y0, y1)
    legend = []
    for k, s in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        pts = [(_xpos(i, len(x)), _ypos(v, y0, y1)) for i, v in enumerate(s.y) if v is not None and math.isfinite(v)]
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        if pts:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
            parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>' for px, py in pts]
        legend.append((s.label, color, s.dashed))
    return "".join(parts + _legend(legend) + ["</svg>"])


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, errors: Sequence[tuple[float, float]]
              | None = None, ylabel: str = "", ymin: float | None = 0.0, ymax: float | None = None) -> str:
    """Vertical bars with optional ``(low, high)`` error whiskers (e.g. Wilson intervals)."""
    hi_vals = [e[1] for e in errors] if errors else []
    y0, y1 = _range(list(values) + hi_vals, ymin, ymax)
    parts = _frame(title, "", ylabel, labels, y0, y1)
    bw = (W - ML - MR) / max(1, len(labels)) * 0.6
    for i, v in enumerate(values):
        cx, top, base = _xpos(i, len(labels)), _ypos(v, y0, y1), _ypos(max(y0, 0.0), y0, y1)
        parts.append(f'<rect x="{cx - bw / 2:.1f}" y="{min(top, base):.1f}" width="{bw:.1f}" '
                     f'height="{abs(base - top):.1f}" fill="{PALETTE[i % len(PALETTE)]}"/>')
        if errors:
            lo, hi = errors[i]
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{_ypos(lo, y0, y1):.1f}" y2="{_ypos(hi, y0, y1):.1f}" '
                         'stroke="#000"/>')
    return "".join([*parts, "</svg>"])


def _color(v: float, vmin: float, vmax: float) -> str:
    t = 0.0 if vmax == vmin else max(0.0, min(1.0, (v - vmin) / (vmax - vmin)))
    if t < 0.5:  # blue -> white
        s = t * 2
        return f"rgb({int(40 + 215 * s)},{int(90 + 165 * s)},255)"
    s = (t - 0.5) * 2  # white -> red
    return f"rgb(255,{int(255 - 185 * s)},{int(255 - 185 * s)})"


def heatmap(title: str, labels: Sequence[str], matrix: Sequence[Sequence[float | None]], *,
            vmin: float = -1.0, vmax: float = 1.0) -> str:
    """A square heatmap of ``matrix`` with row/column ``labels`` (blue = vmin, white = middle, red = vmax)."""
    n = len(labels)
    cell = max(8.0, min(28.0, 420 / max(1, n)))
    left, top = 90, 90
    size = left + cell * n + 60
    parts = [f'<svg viewBox="0 0 {size:.0f} {top + cell * n + 20:.0f}" '
             f'width="{size:.0f}" height="{top + cell * n + 20:.0f}" role="img" aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>']
    fs = max(6.0, min(10.0, cell * 0.8))
    for i, lab in enumerate(labels):
        y = top + cell * i + cell / 2 + fs / 3
        x = left + cell * i + cell / 2
        parts.append(f'<text x="{left - 4}" y="{y:.1f}" font-size="{fs:.0f}" text-anchor="end">{escape(lab)}</text>'
                     f'<text x="{x:.1f}" y="{top - 4}" font-size="{fs:.0f}" '
                     f'transform="rotate(-60 {x:.1f} {top - 4})">{escape(lab)}</text>')
        for j, v in enumerate(matrix[i]):
            fill = "#ccc" if v is None else _color(v, vmin, vmax)
            tip = "n/a" if v is None else f"{v:.3f}"
            parts.append(f'<rect x="{left + cell * j:.1f}" y="{top + cell * i:.1f}" width="{cell:.1f}" '
                         f'height="{cell:.1f}" fill="{fill}"><title>{escape(lab)} vs {escape(labels[j])}: '
                         f'{tip}</title></rect>')
    parts.append(_color_legend(left + cell * n + 12, top, vmin, vmax))
    return "".join([*parts, "</svg>"])



def _color_legend(x: float, top: float, vmin: float, vmax: float) -> str:
    """An 11-step vertical colour bar at ``x`` from ``vmax`` (top) to ``vmin``, with its end labels."""
    cells = "".join(
        f'<rect x="{x:.1f}" y="{top + k * 12}" width="12" height="12" '
        f'fill="{_color(vmax - (vmax - vmin) * k / 10, vmin, vmax)}"/>' for k in range(11))
    return (cells + f'<text x="{x + 16:.1f}" y="{top + 10}" font-size="9">{_fmt(vmax)}</text>'
            f'<text x="{x + 16:.1f}" y="{top + 130}" font-size="9">{_fmt(vmin)}</text>')

def grid_heatmap(title: str, row_labels: Sequence[str], col_labels: Sequence[str],
                 matrix: Sequence[Sequence[float | None]], *, vmin: float = -1.0, vmax: float = 1.0,
                 xlabel: str = "position", ylabel: str = "layer") -> str:
    """A rows × columns heatmap (e.g. layer × position of a patching sweep), blue-white-red, with a scale.

    ``None`` cells are grey; every cell's tooltip gives its row, column and value.
    """
    nr, nc = len(row_labels), len(col_labels)
    cell = max(6.0, min(26.0, 560 / max(1, nc), 520 / max(1, nr)))
    left, top = 84, 84
    width, height = left + cell * nc + 70, top + cell * nr + 34
    fs = max(6.0, min(10.0, cell * 0.8))
    parts = [f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
             f'<text x="{left}" y="14" font-size="12">{escape(title)}</text>']
    rstep = cstep = max(1, math.ceil(fs / cell))  # thin labels out when cells are smaller than the font
    for j, lab in enumerate(col_labels):
        if j % cstep == 0:
            x = left + cell * j + cell / 2
            parts.append(f'<text x="{x:.1f}" y="{top - 4}" font-size="{fs:.0f}" '
                         f'transform="rotate(-60 {x:.1f} {top - 4})">{escape(lab)}</text>')
    for i, lab in enumerate(row_labels):
        y = top + cell * i
        if i % rstep == 0:
            parts.append(f'<text x="{left - 4}" y="{y + cell / 2 + fs / 3:.1f}" font-size="{fs:.0f}" '
                         f'text-anchor="end">{escape(lab)}</text>')
        for j, v in enumerate(matrix[i]):
            ok = v is not None and math.isfinite(v)
            fill = _color(v, vmin, vmax) if ok else "#ccc"  # type: ignore[arg-type]
            tip = f"{v:.4g}" if ok else "n/a"
            parts.append(f'<rect x="{left + cell * j:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                         f'fill="{fill}"><title>{escape(ylabel)} {escape(lab)}, {escape(xlabel)} '
                         f'{escape(col_labels[j])}: {tip}</title></rect>')
    parts.append(f'<text x="{left + cell * nc / 2:.1f}" y="{height - 6:.1f}" font-size="11" '
                 f'text-anchor="middle">{escape(xlabel)}</text>'
                 f'<text x="12" y="{top + cell * nr / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + cell * nr / 2:.1f})">{escape(ylabel)}</text>')
    parts.append(_color_legend(left + cell * nc + 12, top, vmin, vmax))
    return "".join([*parts, "</svg>"])
