import pytest

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.judge_eval import (
    JudgeEvaluation,
    cohen_kappa,
    evaluate_labels,
    format_evaluation,
    normalise_reference,
)
from safetyscope.stats import wilson_interval


def test_kappa_matches_the_textbook_example():
    # 2x2 table [[20, 5], [10, 15]]: p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    ref = ["y"] * 25 + ["n"] * 25
    pred = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(ref, pred) == pytest.approx(0.4)
    assert cohen_kappa(ref, ref) == 1.0
    assert cohen_kappa(["a"] * 4, ["a"] * 4) == 1.0
    with pytest.raises(EvaluationError):
        cohen_kappa(["a"], [])


def test_binary_references_collapse_the_judges_labels():
    pred = ["compliance", "refusal", "incoherent", "compliance", "refusal"]
    ref = ["yes", 0, False, "complied", None]
    ev = evaluate_labels(pred, ref, judge="j")
    assert ev.binary and ev.n == 4 and ev.skipped == 1
    assert ev.confusion == {
        "compliance": {"compliance": 2, "refusal": 0},
        "refusal": {"compliance": 0, "refusal": 2},
    }
    assert ev.agreement == 1.0 and ev.kappa == 1.0


def test_three_way_precision_recall_with_wilson():
    pred = ["compliance", "compliance", "refusal", "incoherent", "refusal"]
    ref = ["compliance", "refusal", "refusal", "incoherent", "incoherent"]
    ev = evaluate_labels(pred, ref)
    assert not ev.binary and ev.n == 5 and ev.agreement == pytest.approx(3 / 5)
    by = {c.label: c for c in ev.classes}
    assert by["compliance"].precision == 0.5 and by["compliance"].recall == 1.0
    assert by["refusal"].precision == 0.5 and by["refusal"].recall == 0.5
    assert by["refusal"].precision_ci == wilson_interval(1, 2)
    assert ev.agreement_ci == wilson_interval(3, 5)
    assert ev.confusion["incoherent"]["refusal"] == 1
    again = JudgeEvaluation.from_dict(ev.to_dict())
    assert again == ev
    text = format_evaluation(ev)
    assert "kappa" in text and "three-way" in text and "precision 0.500" in text


@pytest.mark.parametrize("bad", ["maybe", 2, 0.5, ["yes"]])
def test_unknown_reference_values_are_errors(bad):
    with pytest.raises(EvaluationError, match="not one of"):
        normalise_reference(bad)


def test_all_null_references_and_length_mismatch():
    with pytest.raises(EvaluationError, match="No row has a reference"):
        evaluate_labels(["refusal"], [None])
    with pytest.raises(EvaluationError, match="2 predictions but 1"):
        evaluate_labels(["refusal", "refusal"], ["no"])
