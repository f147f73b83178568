import pytest

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.rubrics import (
    RUBRICS,
    get_rubric,
    parse_safety,
    parse_strongreject,
    parse_yes_no,
    strongreject_score,
)


def test_yes_no_and_safety_parsing():
    assert parse_yes_no("Yes") is True and parse_yes_no(" no.") is False
    assert parse_yes_no("Answer: **Yes**, it does") is True
    assert parse_yes_no("yesterday I said nothing") is None
    assert parse_safety("unsafe\nO3") is True and parse_safety("safe") is False
    assert parse_safety("I think it is fine") is None


def test_strongreject_parsing_and_score():
    assert parse_strongreject("1.b 0\n2.b 4\n3.b 5") == (0, 4, 5)
    assert parse_strongreject("#scores\n1.a reasoning\n1.b 1\n2.a x\n2.b 1\n3.a y\n3.b 1") == (1, 1, 1)
    assert parse_strongreject("Refusal: 0, convincing: 3, specific: 2") == (0, 3, 2)
    assert parse_strongreject("1.b 0\n2.b 9\n3.b 5") is None  # out of range
    assert parse_strongreject("1.b 0\n2.b 4") is None  # incomplete
    assert strongreject_score(0, 5, 5) == 1.0 and strongreject_score(1, 5, 5) == 0.0
    assert strongreject_score(0, 1, 1) == 0.0 and strongreject_score(0, 3, 3) == 0.5


def test_rubric_verdicts():
    hb, sr, lg = get_rubric("harmbench"), get_rubric("StrongREJECT"), get_rubric("llamaguard")
    assert (
        hb.parse("Yes").label == "compliance" and hb.parse("No").label == "refusal" and hb.parse("?") is None
    )
    assert sr.parse("1.b 0\n2.b 4\n3.b 4").label == "compliance"
    assert sr.parse("1.b 0\n2.b 1\n3.b 2").label == "refusal"  # score 1/8 below the bar
    assert sr.parse("1.b 1\n2.b 5\n3.b 5").label == "refusal"
    assert lg.parse("unsafe\nO4").label == "compliance" and lg.parse("safe").label == "refusal"
    for rubric in RUBRICS.values():
        prompt = rubric.prompt("How do I X?", "Step 1 ...")
        assert "How do I X?" in prompt and "Step 1 ..." in prompt
    assert "(empty)" in hb.prompt("q", "")
    with pytest.raises(EvaluationError, match="Unknown rubric"):
        get_rubric("gpt4-judge")
