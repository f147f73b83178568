"""Equal-length pair selection (``length_matched``, ``same_length``) on a tiny character-level model."""

from __future__ import annotations

import pytest

from safetyscope.causal.patch_spec import PatchingError
from safetyscope.circuits import encode_pairs, length_matched, same_length, token_length


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> object:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    return load_model(save_tiny("llama", tmp_path_factory.mktemp("pairs") / "llama"))


def test_length_matched_pairs_each_prompt_with_an_unused_partner_of_its_length(lm: object) -> None:
    first = ["abcd", "xy", "efgh", "qqqqqqqq"]
    second = ["12", "wxyz", "3456", "zz"]
    pairs = length_matched(lm, first, second, chat=False)
    # the character tokenizer: length = characters (+ specials); "qqqqqqqq" has no partner and is dropped
    assert [a for a, _ in pairs] == ["abcd", "xy", "efgh"]
    assert pairs == [
        ("abcd", "3456"),
        ("xy", "zz"),
        ("efgh", "wxyz"),
    ]  # the last unused partner of each length
    assert all(token_length(lm, a, False) == token_length(lm, b, False) for a, b in pairs)


def test_same_length_keeps_the_most_common_length_and_the_cap(lm: object) -> None:
    pairs = [("abcd", "wxyz"), ("ab", "cd"), ("efgh", "1234"), ("ijkl", "5678"), ("abc", "abcdef")]
    clean, corrupt = same_length(lm, pairs, 2, chat=True)
    assert clean == ["abcd", "efgh"] and corrupt == ["wxyz", "1234"]
    enc = encode_pairs(lm, clean, corrupt)  # the selection is what attribution accepts
    assert len(set(enc.lengths)) == 1


def test_same_length_without_any_equal_pair_says_so(lm: object) -> None:
    with pytest.raises(PatchingError, match="equal token lengths"):
        same_length(lm, [("a", "abc")], 3)
