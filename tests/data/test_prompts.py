import json

import pytest

from safetyscope.data.prompts import PromptSet, load_prompts
from safetyscope.errors import PromptError


def test_formats(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \n")
    assert load_prompts(tmp_path / "a.txt").prompts == ("one", "two")
    (tmp_path / "b.jsonl").write_text(json.dumps({"instruction": "x"}) + "\n" + json.dumps("y") + "\n")
    assert load_prompts(tmp_path / "b.jsonl").prompts == ("x", "y")
    (tmp_path / "c.csv").write_text("id,prompt\n1,hello\n2,world\n")
    assert load_prompts(tmp_path / "c.csv").prompts == ("hello", "world")
    (tmp_path / "d.csv").write_text("id,q\n1,hello\n")
    assert load_prompts(tmp_path / "d.csv", column="q").prompts == ("hello",)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"text": ["p1", "p2"]}), tmp_path / "e.parquet")
    assert load_prompts(tmp_path / "e.parquet").prompts == ("p1", "p2")


def test_errors(tmp_path):
    with pytest.raises(PromptError, match="does not exist"):
        load_prompts(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(PromptError, match="no prompts"):
        load_prompts(tmp_path / "empty.txt")
    (tmp_path / "bad.jsonl").write_text('{"instruction": "ok"}\n{oops\n')
    with pytest.raises(PromptError, match=r"bad.jsonl:2"):
        load_prompts(tmp_path / "bad.jsonl")
    (tmp_path / "nofield.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(PromptError, match="none of the fields"):
        load_prompts(tmp_path / "nofield.jsonl")
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(PromptError, match="Unsupported"):
        load_prompts(tmp_path / "x.docx")


def test_promptset_hash_split_require():
    ps = PromptSet(tuple(f"p{i}" for i in range(10)), "s")
    assert ps.hash == PromptSet(tuple(f"p{i}" for i in range(10))).hash
    assert ps.hash != PromptSet(tuple(f"p{i}" for i in reversed(range(10)))).hash
    train, val, test = ps.split((0.6, 0.2, 0.2), seed=1)
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    assert sorted(train.prompts + val.prompts + test.prompts) == sorted(ps.prompts)
    assert ps.split(seed=1)[0].prompts == train.prompts
    with pytest.raises(PromptError, match="at least 20"):
        ps.require(20)
    with pytest.raises(PromptError, match="empty"):
        PromptSet(())
    with pytest.raises(PromptError, match="rows"):
        PromptSet(("ok", " "))
