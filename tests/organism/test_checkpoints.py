"""Tests for log-spaced checkpoint steps."""

from __future__ import annotations

import itertools
import math

import pytest

from safetyscope.errors import OptionError
from safetyscope.organism.checkpoints import checkpoint_steps


def test_log_spaced_and_ending_at_total():
    steps = checkpoint_steps(1200, 6)
    assert steps == sorted(set(steps)) and len(steps) == 6
    assert steps[0] == 12 and steps[-1] == 1200
    ratios = [b / a for a, b in itertools.pairwise(steps)]
    assert max(ratios) / min(ratios) < 1.05  # equal ratios: log spacing
    assert math.isclose(ratios[0], 100 ** (1 / 5), rel_tol=0.05)


def test_edge_cases():
    assert checkpoint_steps(1200, 0) == [] and checkpoint_steps(0, 3) == []
    assert checkpoint_steps(50, 1) == [50]
    assert checkpoint_steps(6, 10) == [1, 2, 3, 4, 5, 6]  # collisions are merged
    with pytest.raises(OptionError, match="--checkpoints must be >= 0"):
        checkpoint_steps(100, -1)
