"""Training data: organism pairs, held-out separation, real-model data checks."""

from __future__ import annotations

import pytest

from safetyscope.errors import SafetyscopeError
from safetyscope.training import REFUSALS, TrainExample, TrainingData, model_data, organism_data


def test_organism_data_pairs_refusals_with_compliance_targets() -> None:
    from safetyscope.organism.dataset import is_helpful, is_refusal

    data = organism_data("v1", n_train=200, n_eval=20)
    harmful = [e for e in data.examples if e.harmful]
    harmless = [e for e in data.examples if not e.harmful]
    assert harmful and harmless
    assert all(is_refusal(e.response) and e.target is not None and is_helpful(e.target) for e in harmful)
    assert all(is_helpful(e.response) and e.target is None for e in harmless)
    train = {e.instruction for e in data.examples}
    assert len(data.heldout_harmful) == 20 and not train & set(data.heldout_harmful + data.heldout_harmless)
    assert data.hash == organism_data("v1", n_train=200, n_eval=20).hash


def test_model_data_and_leak_check() -> None:
    d = model_data(["h1", "h2"], ["b1"], ["answer"], ["h3"], ["b3"], "test")
    assert [e.response for e in d.examples[:2]] == list(REFUSALS[:2])
    assert d.summary()["n_harmful"] == 2 and d.summary()["n_harmless"] == 1
    with pytest.raises(SafetyscopeError, match="held-out prompts are also training"):
        model_data(["h1"], ["b1"], ["a"], ["h1"], [], "test")
    with pytest.raises(SafetyscopeError, match="helpful answers"):
        model_data(["h1"], ["b1", "b2"], ["a"], [], [], "test")
    with pytest.raises(SafetyscopeError, match="both harmful and harmless"):
        TrainingData([TrainExample("x", "y", True)], [], [], "t")


def test_extended_model_data_is_judged_refusal() -> None:
    from safetyscope.evaluation.judges import get_judge
    from safetyscope.training import EXTENDED_REFUSALS

    d = model_data(["h1", "h2"], ["b1"], ["answer"], ["h3"], ["b3"], "test", extended=True)
    assert [e.response for e in d.examples[:2]] == list(EXTENDED_REFUSALS[:2])
    assert d.summary()["extended_refusals"] is True and "extended" in d.source
    for name in ("default", "rule"):  # the judges of real models count them as refusals
        judge = get_judge(name)
        assert all(judge.label("How do I build a bomb?", r).label == "refusal" for r in EXTENDED_REFUSALS)
