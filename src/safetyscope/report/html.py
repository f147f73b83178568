"""Render a *page* (plain data) as one self-contained, offline HTML document.

A page is a dict::

    {"title": str, "subtitle": str,
     "verdict": [{"text", "status": "finding"|"non-finding"|"exploratory", "section", "figure"?}],
     "sections": [{"id", "title", "paragraphs": [str], "tables": [{"header", "rows", "caption"?}],
                   "figures": [figure spec, see safetyscope.report.plots]}],
     "appendix": [{"id", "title", "pre"?: str, "tables"?: [...]}]}

Figures are inline SVG drawn by :mod:`safetyscope.report.plots`, each followed by its caption
plus the automatic notes (few points, control equals intervention). When ``figures_dir`` is
given every figure is also written there as ``NAME.png`` and ``NAME.pdf``. Inline CSS only: no
scripts, fonts, images or stylesheets fetched from anywhere. All text is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from safetyscope.report.plots import draw, notes, save, to_svg

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1180px;color:#222;
line-height:1.4;padding:0 1rem}h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;
font-size:.88rem;vertical-align:top}th{background:#f4f4f4}.figs{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:.5rem 0 1rem 0;max-width:700px;flex:1 1 520px}figure svg{width:100%;height:auto}
figcaption{font-size:.84rem;color:#444}.note{color:#8a4b00;font-weight:600}.small{font-size:.8rem;color:#666}
.verdict{border:2px solid #333;border-radius:6px;padding:.6rem 1rem;background:#fafafa}.verdict ul{padding-left:1.1rem}
.tag{display:inline-block;font-size:.72rem;font-weight:700;text-transform:uppercase;padding:0 .35rem;border-radius:3px;
margin-right:.4rem;color:#fff}.finding{background:#1f6f3f}.non-finding{background:#777}.exploratory{background:#b36b00}
code{background:#f4f4f4;padding:0 .2rem}pre{white-space:pre-wrap}"""

STATUSES = ("finding", "non-finding", "exploratory")


def _table(t: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in t["header"])
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in t["rows"])
    cap = f"<caption class=small>{escape(t['caption'])}</caption>" if t.get("caption") else ""
    return f"<table>{cap}<tr>{head}</tr>{body}</table>"


def figure_html(spec: dict[str, Any], figures_dir: Path | None = None) -> str:
    """One ``<figure id="fig-NAME">``: inline SVG, caption and automatic notes (files written when asked)."""
    fig = draw(spec)
    svg = to_svg(fig)
    if figures_dir is not None:
        save(fig, figures_dir, spec["name"])
    extra = "".join(f" <span class=note>{escape(n)}</span>" for n in notes(spec))
    files = (
        f" <span class=small>Files: figures/{escape(spec['name'])}.png, .pdf</span>"
        if figures_dir is not None
        else ""
    )
    return (
        f'<figure id="fig-{escape(spec["name"])}" data-figure="{escape(spec["name"])}">{svg}'
        f"<figcaption>{escape(spec.get('caption', ''))}{extra}{files}</figcaption></figure>"
    )


def verdict_html(claims: list[dict[str, Any]]) -> str:
    """The verdict block: one line per claim, tagged by status, linked to its section and figure."""
    items = []
    for c in claims:
        status = c.get("status", "exploratory")
        status = status if status in STATUSES else "exploratory"
        links = [f'<a href="#sec-{escape(c["section"])}">section</a>'] if c.get("section") else []
        if c.get("figure"):
            links.append(f'<a href="#fig-{escape(c["figure"])}">figure</a>')
        link = f" <span class=small>({', '.join(links)})</span>" if links else ""
        items.append(f'<li><span class="tag {status}">{escape(status)}</span>{escape(c["text"])}{link}</li>')
    body = "".join(items) or "<li>No verdict rule applied (every section was turned off).</li>"
    return f"<div class=verdict id=verdict><b>Verdict</b><ul>{body}</ul></div>"


def _section(sec: dict[str, Any], figures_dir: Path | None, level: int = 2) -> str:
    parts = [f'<section id="sec-{escape(sec["id"])}"><h{level}>{escape(sec["title"])}</h{level}>']
    parts += [f"<p>{escape(p)}</p>" for p in sec.get("paragraphs", [])]
    parts += [_table(t) for t in sec.get("tables", [])]
    if sec.get("pre"):
        parts.append(f"<pre class=small>{escape(sec['pre'])}</pre>")
    figs = [figure_html(s, figures_dir) for s in sec.get("figures", [])]
    if figs:
        parts.append("<div class=figs>" + "".join(figs) + "</div>")
    parts.append("</section>")
    return "".join(parts)


def render(page: dict[str, Any], figures_dir: Path | None = None) -> str:
    """The complete HTML document for ``page`` (see the module docstring)."""
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(page['title'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(page['title'])}</h1>",
        f"<p class=small>{escape(page.get('subtitle', ''))}</p>",
        verdict_html(page.get("verdict", [])),
    ]
    parts += [_section(s, figures_dir) for s in page.get("sections", [])]
    parts += [_section(s, None) for s in page.get("appendix", [])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(page: dict[str, Any], path: Path, figures_dir: Path | None = None) -> Path:
    """Render ``page`` to ``path`` (parents created); figures also go to ``figures_dir`` when given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(page, figures_dir), encoding="utf-8")
    return path
