import pytest

from safetyscope.data.jsonl import iter_jsonl
from safetyscope.errors import PromptError


def test_yields_numbered_values_and_skips_blank_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n"text"\n[1, 2]\n')
    assert list(iter_jsonl(path, PromptError)) == [(1, {"a": 1}), (3, "text"), (4, [1, 2])]


def test_invalid_line_raises_the_given_error_with_its_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(PromptError, match=r"bad\.jsonl:2: invalid JSON"):
        list(iter_jsonl(path, PromptError))
