import pytest

from safetyscope import load_model
from safetyscope.errors import PromptError
from safetyscope.evaluation.linear_judge import LinearJudge
from safetyscope.model.tiny import save_tiny
from safetyscope.pipelines.refusal import is_organism, judge_for, refusal_prompts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(save_tiny("llama", tmp_path_factory.mktemp("r") / "m"))


def test_user_files_are_split_disjointly(tiny, tmp_path):
    (tmp_path / "h.txt").write_text("\n".join(f"harm {i}" for i in range(40)))
    (tmp_path / "b.txt").write_text("\n".join(f"fine {i}" for i in range(30)))
    p = refusal_prompts(tiny, tmp_path / "h.txt", tmp_path / "b.txt", n_train=10, n_val=5, n_test=100)
    assert (len(p.harmful_train), len(p.harmful_val), len(p.harmful_test)) == (10, 5, 25)
    assert not set(p.harmful_train) & set(p.harmful_test) and not set(p.harmful_val) & set(p.harmful_test)
    assert len(p.harmless_train) + len(p.harmless_val) + len(p.harmless_test) == 30
    assert not is_organism(tiny) and isinstance(judge_for(tiny), LinearJudge)


def test_missing_or_tiny_files(tiny, tmp_path):
    with pytest.raises(PromptError, match="--harmful and --harmless"):
        refusal_prompts(tiny)
    (tmp_path / "h.txt").write_text("a\nb\n")
    (tmp_path / "b.txt").write_text("c\nd\ne\nf\ng\nh\n")
    with pytest.raises(PromptError, match="at least 6"):
        refusal_prompts(tiny, tmp_path / "h.txt", tmp_path / "b.txt")


def test_an_edit_of_an_organism_counts_as_the_organism(tmp_path):
    """`safetyscope edit` of an organism keeps its corpus and judge (so audits of both compare)."""
    import json
    from types import SimpleNamespace

    from safetyscope.interventions.export import EDIT_CARD
    from safetyscope.pipelines.refusal import ORGANISM_CARD

    org, edit, other = tmp_path / "org", tmp_path / "edit", tmp_path / "other"
    for d in (org, edit, other):
        d.mkdir()
    (org / ORGANISM_CARD).write_text("{}")
    (edit / EDIT_CARD).write_text(json.dumps({"source_model": str(org)}))
    (other / EDIT_CARD).write_text(json.dumps({"source_model": "smollm2-135m-instruct"}))
    assert is_organism(SimpleNamespace(path=org)) and is_organism(SimpleNamespace(path=edit))
    assert not is_organism(SimpleNamespace(path=other)) and not is_organism(SimpleNamespace(path=None))
    (edit / EDIT_CARD).write_text("not json")
    assert not is_organism(SimpleNamespace(path=edit))
