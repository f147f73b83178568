"""Bad prompt files end in one PromptError that names the file and the row, never in the text 'None'."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safetyscope.data.prompts import load_prompts
from safetyscope.errors import PromptError

non_text = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=non_text, row=st.integers(0, 3))
def test_non_text_jsonl_fields_name_file_and_row(tmp_path, value, row):
    path = tmp_path / "p.jsonl"
    lines = [json.dumps({"instruction": f"ok {i}"}) for i in range(4)]
    lines[row] = json.dumps({"instruction": value})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PromptError, match=rf"p\.jsonl:{row + 1}: field 'instruction' is .*not text"):
        load_prompts(path)


@pytest.mark.parametrize("line", ["3", "[1, 2]", "null", "true"])
def test_non_object_jsonl_lines(tmp_path, line):
    path = tmp_path / "q.jsonl"
    path.write_text('"fine"\n' + line + "\n")
    with pytest.raises(PromptError, match=r"q\.jsonl:2: "):
        load_prompts(path)


def test_ragged_csv_rows(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("id,prompt\n1,hello\n2,a,b\n")
    with pytest.raises(PromptError, match=r"long\.csv:3: 3 values but the header has 2 columns"):
        load_prompts(long)
    short = tmp_path / "short.csv"
    short.write_text("prompt,id\nhello,1\nbye\n")
    with pytest.raises(PromptError, match=r"short\.csv:3: too few values; columns \['id'\]"):
        load_prompts(short)
    empty = tmp_path / "blank.csv"
    empty.write_text("id,prompt\n1,\n")
    with pytest.raises(PromptError, match=r"blank\.csv:2: field 'prompt' is empty"):
        load_prompts(empty)


def test_unreadable_files(tmp_path):
    bad = tmp_path / "latin.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(PromptError, match="not UTF-8 text"):
        load_prompts(bad)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02hello\n")
    with pytest.raises(PromptError, match="binary"):
        load_prompts(binary)
    jsonl = tmp_path / "latin.jsonl"
    jsonl.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(PromptError, match="not UTF-8"):
        load_prompts(jsonl)
    parquet = tmp_path / "corrupt.parquet"
    parquet.write_bytes(b"PAR1 definitely not parquet")
    pytest.importorskip("pyarrow")
    with pytest.raises(PromptError, match="not a readable parquet file"):
        load_prompts(parquet)
    with pytest.raises(PromptError, match="is a directory"):
        load_prompts(tmp_path)


def test_parquet_null_field(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "n.parquet")
    with pytest.raises(PromptError, match=r"n\.parquet:2: field 'text' is NoneType"):
        load_prompts(tmp_path / "n.parquet")
