"""Figures drawn with matplotlib from plain *figure specs* (dicts), one consistent style.

A spec is JSON-like data, so the audit can store it, a notebook can redraw it, and this module
imports nothing of the package (DESIGN: ``report`` receives plain data). Kinds:

* ``curves``: ``x`` plus ``series``; each series ``{label, y, low?, high?, role}``. ``low``/``high``
  (e.g. 95% Wilson bounds) are drawn as a band around the line.
* ``bars``: grouped bars, ``categories`` plus ``series`` of the same shape; bounds become error bars.
* ``heatmap``: ``rows``, ``cols``, ``matrix`` (``None`` = grey), ``vmin``, ``vmax``, ``cbar``.

Roles set the style everywhere: ``effect`` (colour, solid, markers), ``control`` (grey, dashed,
hatched band), ``baseline`` (black, dotted). A series may carry ``group`` (an int): the effect and
control of one group (e.g. one run of a comparison) share a colour, and a control is only compared
with the effects of its own group by :func:`notes`. Optional spec keys: ``title``, ``xlabel``,
``ylabel``, ``ylim``, ``caption``.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (no global backend
is touched, so a notebook's backend is left alone); files are rendered with the Agg canvas.
SVG output is deterministic: a fixed ``svg.hashsalt``, no date, text kept as text.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

EFFECT_COLORS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085")
CONTROL_COLOR = "#808080"
BASELINE_COLOR = "#222222"
STYLE: dict[str, Any] = {
    "svg.hashsalt": "safetyscope",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "legend.fontsize": 8,
    "legend.frameon": False,
    "font.family": "DejaVu Sans",
}
#: Figure size in inches (width, height) of curves and bars.
SIZE = (6.4, 3.4)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _nan(values: Sequence[Any]) -> list[float]:
    return [float(v) if _finite(v) else math.nan for v in values]


def _style(role: str, k: int, group: int | None = None) -> dict[str, Any]:
    if role == "control":
        color = CONTROL_COLOR if group is None else EFFECT_COLORS[group % len(EFFECT_COLORS)]
        return {"color": color, "linestyle": "--", "marker": "s", "hatch": "//"}
    if role == "baseline":
        return {"color": BASELINE_COLOR, "linestyle": ":", "marker": None, "hatch": None}
    k = k if group is None else group
    return {"color": EFFECT_COLORS[k % len(EFFECT_COLORS)], "linestyle": "-", "marker": "o", "hatch": None}


def _curves(ax: Any, spec: dict[str, Any]) -> None:
    x = list(spec["x"])
    pos = list(range(len(x)))
    k = 0
    for s in spec["series"]:
        role = s.get("role", "effect")
        st = _style(role, k, s.get("group"))
        k += role == "effect"
        y = _nan(s["y"])
        ax.plot(
            pos,
            y,
            color=st["color"],
            linestyle=st["linestyle"],
            marker=st["marker"],
            markersize=4,
            linewidth=1.6,
            label=s["label"],
            zorder=3 if role == "effect" else 2,  # an effect equal to its control stays visible
        )
        if s.get("low") is not None and s.get("high") is not None:
            lo, hi = _nan(s["low"]), _nan(s["high"])
            ax.fill_between(
                pos,
                lo,
                hi,
                color=st["color"],
                alpha=0.14 if role != "control" else 0.10,
                hatch=st["hatch"],
                linewidth=0,
            )
            ax.errorbar(
                pos,
                y,
                yerr=[
                    [max(0.0, a - b) for a, b in zip(y, lo, strict=True)],
                    [max(0.0, b - a) for a, b in zip(y, hi, strict=True)],
                ],
                fmt="none",
                ecolor=st["color"],
                elinewidth=0.8,
                capsize=2,
            )
    step = max(1, math.ceil(len(x) / 16))
    ax.set_xticks(pos[::step], [str(v) for v in x[::step]])
    if len(pos) == 1:
        ax.set_xlim(-0.5, 0.5)


def _bars(ax: Any, spec: dict[str, Any]) -> None:
    cats = list(spec["categories"])
    series = spec["series"]
    width = 0.8 / max(1, len(series))
    k = 0
    for j, s in enumerate(series):
        role = s.get("role", "effect")
        st = _style(role, k, s.get("group"))
        k += role == "effect"
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(cats))]
        y = _nan(s["y"])
        heights = [0.0 if math.isnan(v) else v for v in y]
        if role == "baseline":  # outlined, so it never reads as an effect or a control
            ax.bar(
                xs,
                heights,
                width=width * 0.92,
                facecolor="white",
                edgecolor=BASELINE_COLOR,
                linewidth=1.2,
                label=s["label"],
            )
        else:
            ax.bar(
                xs,
                heights,
                width=width * 0.92,
                color=st["color"],
                alpha=0.85 if role == "effect" else 0.55,
                hatch=st["hatch"],
                edgecolor="white",
                label=s["label"],
            )
        tops = _nan(s["high"]) if s.get("high") is not None else y
        for xv, v, top in zip(xs, y, tops, strict=True):
            if not math.isnan(v):
                ax.annotate(
                    f"{v:.3g}",
                    (xv, v if math.isnan(top) else max(v, top)),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="#333",
                )
        if s.get("low") is not None and s.get("high") is not None:
            lo, hi = _nan(s["low"]), _nan(s["high"])
            ax.errorbar(
                xs,
                y,
                yerr=[
                    [max(0.0, a - b) for a, b in zip(y, lo, strict=True)],
                    [max(0.0, b - a) for a, b in zip(y, hi, strict=True)],
                ],
                fmt="none",
                ecolor="black",
                elinewidth=0.9,
                capsize=3,
            )
    ax.set_xticks(range(len(cats)), cats)
    ax.grid(axis="x", visible=False)


def _heatmap(fig: Figure, ax: Any, spec: dict[str, Any]) -> None:
    import numpy as np

    m = np.array(
        [[math.nan if not _finite(v) else float(v) for v in row] for row in spec["matrix"]], dtype=float
    )
    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad="#cccccc")
    im = ax.imshow(
        np.ma.masked_invalid(m),
        cmap=cmap,
        vmin=spec.get("vmin", -1.0),
        vmax=spec.get("vmax", 1.0),
        aspect="auto",
        interpolation="nearest",
    )
    rows, cols = [str(r) for r in spec["rows"]], [str(c) for c in spec["cols"]]
    rstep, cstep = max(1, math.ceil(len(rows) / 24)), max(1, math.ceil(len(cols) / 24))
    ax.set_yticks(range(0, len(rows), rstep), rows[::rstep])
    ax.set_xticks(range(0, len(cols), cstep), cols[::cstep], rotation=60, ha="right")
    ax.grid(False)
    if m.size <= 144:  # small maps: print each value
        for (i, j), v in np.ndenumerate(m):
            if math.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white"
                    if abs(v) > 0.6 * max(abs(spec.get("vmin", -1.0)), spec.get("vmax", 1.0))
                    else "#222",
                )
    fig.colorbar(im, ax=ax, label=spec.get("cbar", ""), shrink=0.9)


def draw(spec: dict[str, Any]) -> Figure:
    """Draw one figure spec (see the module docstring) and return the matplotlib figure."""
    kind = spec.get("kind")
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]
        if kind == "heatmap":
            n = max(len(spec["rows"]), len(spec["cols"]))
            side = min(7.0, max(3.6, 0.28 * n + 2.0))
            fig = Figure(figsize=(side + 1.2, side), layout="constrained")
        else:
            fig = Figure(figsize=SIZE, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if kind == "curves":
            _curves(ax, spec)
        elif kind == "bars":
            _bars(ax, spec)
        elif kind == "heatmap":
            _heatmap(fig, ax, spec)
        else:
            raise ValueError(f"unknown figure kind {kind!r}; expected curves, bars or heatmap")
        if spec.get("ylim") is not None:
            ax.set_ylim(*spec["ylim"])
        ax.set_title(spec.get("title", ""), loc="left")
        ax.set_xlabel(spec.get("xlabel", ""))
        ax.set_ylabel(spec.get("ylabel", ""))
        if kind != "heatmap" and spec.get("series"):
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element: deterministic, no XML prolog, no external references."""
    buf = io.StringIO()
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(
        r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg") :], flags=re.S
    )  # RDF boilerplate
    return text.strip()


def save(fig: Figure, folder: Path, name: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``folder/name.<fmt>`` for each format (PNG at 160 dpi, PDF without a creation date)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"figure name {name!r} must be letters, digits, '_', '.' or '-'")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            meta: dict[str, Any] = {"CreationDate": None} if fmt == "pdf" else {}
            fig.savefig(path, format=fmt, dpi=160, metadata=meta or None)
            out.append(path)
    return out


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def notes(spec: dict[str, Any]) -> list[str]:
    """Automatic caption notes that keep a thin figure from being read as a finding.

    * ``curves`` with 2 or 3 points: "only N points: N separate measurements, not a trend".
    * ``curves``/``bars`` where, at every point, each ``effect`` series lies within a ``control``
      series (intervals overlap when both carry bounds, values equal to 1e-9 otherwise):
      "non-finding: control equals intervention".
    """
    out = []
    if spec.get("kind") == "curves" and 2 <= len(spec.get("x", [])) <= 3:
        n = len(spec["x"])
        out.append(f"Only {n} points: read them as {n} separate measurements, not as a trend.")
    series = spec.get("series") or []
    effects = [s for s in series if s.get("role", "effect") == "effect"]
    controls = [s for s in series if s.get("role") == "control"]
    if spec.get("kind") in ("curves", "bars") and effects and controls:

        def same(e: dict[str, Any], c: dict[str, Any], i: int) -> bool:
            ey, cy = e["y"][i], c["y"][i]
            if not (_finite(ey) and _finite(cy)):
                return True
            if all(s.get(k) is not None for s in (e, c) for k in ("low", "high")):
                return intervals_overlap((e["low"][i], e["high"][i]), (c["low"][i], c["high"][i]))
            return abs(ey - cy) <= 1e-9 * max(1.0, abs(ey), abs(cy))

        def mine(e: dict[str, Any]) -> list[dict[str, Any]]:
            return [c for c in controls if c.get("group") == e.get("group")]

        n = len(effects[0]["y"])
        if all(mine(e) for e in effects) and all(
            any(same(e, c, i) for c in mine(e)) for e in effects for i in range(n)
        ):
            out.append(
                "Non-finding: at every point the intervention is indistinguishable from its control "
                "(overlapping 95% intervals), so this figure shows no effect."
            )
    return out
