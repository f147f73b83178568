"""Token-level fidelity: LCS / ROUGE-L against brute force, arm scores, mapped-beats-mean."""

from __future__ import annotations

import itertools
import random

import pytest

from safetyscope.evaluation.metrics import Rate
from safetyscope.transfer import fidelity, lcs_len, rouge_l


def _brute_lcs(a: list[int], b: list[int]) -> int:
    for k in range(min(len(a), len(b)), 0, -1):
        subs = set(itertools.combinations(b, k))
        if any(c in subs for c in itertools.combinations(a, k)):
            return k
    return 0


def test_lcs_matches_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(40):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 7))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 7))]
        assert lcs_len(a, b) == _brute_lcs(a, b)


def test_rouge_l_values() -> None:
    assert rouge_l([1, 2, 3], [1, 2, 3]) == 1.0
    assert rouge_l([], []) == 1.0 and rouge_l([1], []) == 0.0 and rouge_l([1, 2], [3, 4]) == 0.0
    # lcs 2, p = 2/3, r = 2/4 -> F1 = 2pr/(p+r) = 4/7
    assert rouge_l([1, 2, 9], [1, 5, 2, 6]) == pytest.approx(4 / 7)


def test_fidelity_scores_arms_against_truth() -> None:
    true = [[1, 2, 3], [4, 5], [6]]
    mapped = [[1, 2, 3], [4, 5], [7]]
    mean = [[1, 9, 9], [0], [6]]
    labels = {"1 2 3": "a", "4 5": "b", "6": "c", "7": "c", "1 9 9": "x", "0": "b"}

    def decode(ids: list[int]) -> str:
        return " ".join(map(str, ids))

    fid = fidelity(["p", "q", "r"], true, mapped, mean, decode, lambda _p, c: labels[c])
    assert fid.mapped.exact_match == Rate.from_counts(2, 3)
    assert fid.mean_ablated.exact_match == Rate.from_counts(1, 3)
    assert fid.mapped.rouge_l == pytest.approx(2 / 3)
    assert fid.mapped.label_agreement == Rate.from_counts(3, 3)
    assert fid.mean_ablated.label_agreement == Rate.from_counts(2, 3)
    assert fid.mapped_beats_mean == Rate.from_counts(2, 3)  # prompts 0 and 1; prompt 2 mean wins
    d = fid.to_dict()
    assert d["n"] == 3 and d["samples"][0] == {
        "prompt": "p",
        "true": "1 2 3",
        "mapped": "1 2 3",
        "mean_ablated": "1 9 9",
    }
