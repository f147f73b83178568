"""Tests for the statistics helpers."""

from __future__ import annotations

import pytest

from safetyscope.stats import wilson_interval


def test_wilson_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson_interval(0, 200)
    assert lo == 0.0 and hi == pytest.approx(0.01884, abs=1e-4)
    lo, hi = wilson_interval(200, 200)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.01884, abs=1e-4)


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
