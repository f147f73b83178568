"""Tests of the matplotlib figures drawn from plain specs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from safetyscope.report.plots import draw, notes, save, to_svg


def _curve(n: int = 4, control_y: float = 9.0, group: int | None = None) -> dict:
    x = list(range(n))
    eff = {
        "label": "e",
        "y": [float(i) for i in x],
        "low": [i - 0.5 for i in x],
        "high": [i + 0.5 for i in x],
    }
    ctl = {
        "label": "c",
        "role": "control",
        "y": [control_y] * n,
        "low": [control_y - 0.5] * n,
        "high": [control_y + 0.5] * n,
    }
    if group is not None:
        eff["group"] = ctl["group"] = group
    return {"name": "c", "kind": "curves", "x": x, "series": [eff, ctl], "title": "t"}


def test_svg_is_deterministic_valid_and_has_no_external_references() -> None:
    a, b = to_svg(draw(_curve())), to_svg(draw(_curve()))
    assert a == b
    root = ET.fromstring(a)
    assert root.tag.endswith("svg")
    refs = [v for e in root.iter() for k, v in e.attrib.items() if k.endswith("href")]
    assert all(r.startswith("#") for r in refs)  # only internal references (clip paths, markers)
    assert "<metadata" not in a and not a.startswith("<?xml")


def test_wilson_band_is_drawn_for_series_with_bounds() -> None:
    from matplotlib.collections import PolyCollection

    fig = draw(_curve())
    ax = fig.axes[0]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2  # one band per series
    assert ax.get_legend() is not None
    line = ax.get_lines()[0]
    assert list(line.get_ydata()) == [0.0, 1.0, 2.0, 3.0]


def test_bars_heatmap_and_missing_values() -> None:
    bars = {"kind": "bars", "categories": ["a", "b"], "series": [{"label": "e", "y": [1.0, None]}]}
    assert len(draw(bars).axes[0].patches) == 2
    heat = {"kind": "heatmap", "rows": ["r"], "cols": ["a", "b"], "matrix": [[0.5, None]]}
    assert len(draw(heat).axes) == 2  # the map and its colour bar
    with pytest.raises(ValueError, match="unknown figure kind"):
        draw({"kind": "pie"})


def test_save_writes_png_and_pdf_and_checks_the_name(tmp_path) -> None:
    paths = save(draw(_curve()), tmp_path, "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="figure name"):
        save(draw(_curve()), tmp_path, "../evil")


def test_notes_flag_few_points_and_control_equal_to_intervention() -> None:
    assert notes(_curve(4)) == []
    assert notes(_curve(2))[0].startswith("Only 2 points")
    same = notes(_curve(4, control_y=1.5))  # overlaps the control at x=1, 2 only: still a finding
    assert not any("Non-finding" in n for n in same)
    flat = _curve(3)
    flat["series"][0].update(y=[9.0] * 3, low=[8.8] * 3, high=[9.2] * 3)
    assert any("Non-finding" in n for n in notes(flat))
    # without bounds, equality is exact (to 1e-9)
    exact = {
        "kind": "bars",
        "categories": ["a"],
        "series": [{"label": "e", "y": [0.3]}, {"label": "c", "role": "control", "y": [0.3]}],
    }
    assert any("Non-finding" in n for n in notes(exact))
    exact["series"][0]["y"] = [0.31]
    assert not notes(exact)


def test_notes_compare_an_effect_only_with_its_own_group() -> None:
    spec = _curve(4, group=0)
    other = _curve(4, group=1)["series"]
    other[1]["y"] = [float(i) for i in range(4)]  # group 1's control equals group 0's effect
    other[1]["low"], other[1]["high"] = [i - 0.5 for i in range(4)], [i + 0.5 for i in range(4)]
    spec["series"] += other
    assert not any("Non-finding" in n for n in notes(spec))
