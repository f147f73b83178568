"""Tests of the bundled prompt sets."""

from __future__ import annotations

import pytest

from safetyscope.data.bundled import load_bundled
from safetyscope.errors import PromptError


def test_bundled_sets_have_a_few_hundred_distinct_prompts_and_split_reproducibly() -> None:
    for name in ("harmful", "harmless"):
        pset = load_bundled(name)
        assert 250 <= len(pset) == len(set(pset.prompts))
        a = pset.split((0.6, 0.2, 0.2), seed=3)
        b = pset.split((0.6, 0.2, 0.2), seed=3)
        assert [p.prompts for p in a] == [p.prompts for p in b]


def test_harmful_set_is_requests_only() -> None:
    assert all(p.rstrip().endswith(("?", ".")) for p in load_bundled("harmful").prompts)


def test_unknown_name_is_an_error() -> None:
    with pytest.raises(PromptError):
        load_bundled("nope")
