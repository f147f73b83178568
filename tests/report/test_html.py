"""Tests of the inline SVG figures and the HTML report renderer."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from safetyscope.report.figures import Series, bar_chart, heatmap, line_chart
from safetyscope.report.html import render


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    return root


def test_line_chart_is_valid_svg_with_one_polyline_per_series() -> None:
    svg = line_chart("t", [0, 1, 2], [Series("a", [0.1, 0.5, 0.9]), Series("b", [None, 0.2, 0.3], dashed=True)],
                     ylabel="y", ymin=0, ymax=1)
    root = _parse(svg)
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 2


def test_bar_chart_and_heatmap_are_valid_svg() -> None:
    _parse(bar_chart("bars", ["x", "y"], [0.2, 0.8], errors=[(0.1, 0.3), (0.7, 0.9)]))
    root = _parse(heatmap("h", ["a", "b"], [[1.0, -0.5], [-0.5, None]]))
    assert len([e for e in root.iter() if e.tag.endswith("rect")]) >= 4


def test_constant_and_nan_series_do_not_break_the_chart() -> None:
    _parse(line_chart("flat", [1, 2], [Series("c", [0.5, 0.5]), Series("n", [float("nan"), None])]))


def test_text_is_escaped() -> None:
    evil = '<script>alert("x")</script> & "q"'
    svg = line_chart(evil, [evil], [Series(evil, [1.0])], xlabel=evil, ylabel=evil)
    _parse(svg)
    assert "<script>" not in svg
    svg = heatmap(evil, [evil], [[0.0]])
    _parse(svg)
    assert "<script>" not in svg


def _rate(k: int, n: int) -> dict:
    from safetyscope.stats import wilson_interval

    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n, "ci_low": lo, "ci_high": hi}


def _page() -> dict:
    curve = {"name": "curve", "kind": "curves", "title": "<t>", "x": [1, 2, 3, 4],
             "series": [{"label": "effect", "y": [1.0, 2.0, 3.0, 4.0], "low": [0.5, 1.5, 2.5, 3.5],
                         "high": [1.5, 2.5, 3.5, 4.5]},
                        {"label": "control", "role": "control", "y": [9.0, 9.0, 9.0, 9.0]}],
             "caption": "caption <b>"}
    bars = {"name": "bars", "kind": "bars", "categories": ["a", "b"], "caption": "bars",
            "series": [{"label": "e", "y": [10.0, 20.0], "low": [5.0, 15.0], "high": [15.0, 25.0]},
                       {"label": "c", "role": "control", "y": [12.0, 18.0], "low": [6.0, 14.0], "high": [16.0, 22.0]}]}
    heat = {"name": "heat", "kind": "heatmap", "rows": ["x", "y"], "cols": ["x", "y"], "matrix": [[1.0, None], [0.0, 1.0]]}
    return {"title": "m<&>", "subtitle": "s",
            "verdict": [{"text": "claim <i>", "status": "finding", "section": "one", "figure": "curve"},
                        {"text": "nothing", "status": "non-finding", "section": "one"}],
            "sections": [{"id": "one", "title": "One", "paragraphs": ["p <script>"],
                          "tables": [{"header": ["h"], "rows": [["<&>"]]}], "figures": [curve, bars, heat]}],
            "appendix": [{"id": "prov", "title": "Provenance", "pre": "{<x>}"}]}


def test_render_is_self_contained_escaped_and_links_the_verdict(tmp_path) -> None:
    page = render(_page(), tmp_path / "figures")
    assert page.count("<svg") == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "<metadata" not in page
    assert "m&lt;&amp;&gt;" in page and "claim &lt;i&gt;" in page and "&lt;&amp;&gt;" in page
    # the verdict comes before the first section and links to the figure and the section
    assert page.index('id=verdict') < page.index('id="sec-one"')
    assert 'href="#fig-curve"' in page and 'id="fig-curve"' in page and 'href="#sec-one"' in page
    assert 'class="tag finding"' in page and 'class="tag non-finding"' in page
    for name in ("curve", "bars", "heat"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{name}.{ext}").stat().st_size > 1000
    # the bars' effect overlaps its control at both categories: the caption says it is a non-finding
    bars_html = page[page.index('id="fig-bars"'):page.index('id="fig-heat"')]
    assert "Non-finding" in bars_html
    curve_html = page[page.index('id="fig-curve"'):page.index('id="fig-bars"')]
    assert "Non-finding" not in curve_html and "Only" not in curve_html


def test_render_without_figure_files_writes_nothing(tmp_path) -> None:
    page = render(_page())
    assert page.count("<svg") == 3 and "Files: figures" not in page
