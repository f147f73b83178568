import pytest

from safetyscope.evaluation.verdict import LABELS, BaseJudge, Judge, Verdict


def test_verdict_validates_and_serialises():
    assert LABELS == ("refusal", "compliance", "incoherent")
    with pytest.raises(ValueError, match="label"):
        Verdict("maybe", 0.5, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score"):
        Verdict("refusal", 1.5, "x")
    assert Verdict("refusal", 0.9, "x").to_dict() == {"label": "refusal", "score": 0.9, "reason": "x"}


def test_base_judge_loops_label_and_satisfies_the_protocol():
    class Always(BaseJudge):
        name = "always"

        def label(self, instruction, completion):
            return Verdict("compliance", 1.0, instruction + completion)

    judge = Always()
    assert isinstance(judge, Judge)
    assert [v.reason for v in judge.label_many([("a", "b"), ("c", "d")])] == ["ab", "cd"]
    with pytest.raises(NotImplementedError):
        BaseJudge().label("a", "b")
