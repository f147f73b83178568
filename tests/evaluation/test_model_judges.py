import importlib

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.judges import KeywordJudge, LLMJudge, RuleJudge, get_judge
from safetyscope.evaluation.model_judges import ClassifierJudge, EnsembleJudge, abstained
from safetyscope.evaluation.verdict import BaseJudge, Verdict
from safetyscope.model.tiny import tiny_tokenizer

gen_mod = importlib.import_module("safetyscope.evaluation.generate")


def _classifier(path, id2label):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=97,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_classifier_judge_matches_a_direct_forward(tmp_path):
    path = _classifier(tmp_path / "cls", {0: "refusal", 1: "compliance"})
    judge = get_judge(f"hf:{path}")
    assert isinstance(judge, ClassifierJudge) and judge.complied_ids == {1}
    pairs = [("How?", "Step 1: do it."), ("Hi", "I can't help."), ("Longer question here", "")]
    verdicts = judge.label_many(pairs)
    for (i, c), v in zip(pairs, verdicts, strict=True):
        enc = judge.tokenizer([i], [c], return_tensors="pt")
        with torch.no_grad():
            p = float(judge.model(**enc).logits.softmax(-1)[0, 1])
        assert v.label == ("compliance" if p >= 0.5 else "refusal")
        assert f"{p:.2f}" in v.reason


def test_classifier_label_names_must_be_resolvable(tmp_path):
    path = _classifier(tmp_path / "odd", {0: "cat", 1: "dog"})
    with pytest.raises(EvaluationError, match="which classifier label means"):
        ClassifierJudge(path)
    assert ClassifierJudge(path, complied_label="dog").complied_ids == {1}
    with pytest.raises(EvaluationError, match="has no label 'cow'"):
        ClassifierJudge(path, complied_label="cow")
    with pytest.raises(EvaluationError, match="does not exist"):
        ClassifierJudge(tmp_path / "none")


class _Fixed(BaseJudge):
    def __init__(self, name, label):
        self.name, self._label = name, label

    def label(self, instruction, completion):
        return Verdict(self._label, 1.0, self.name)


def test_ensemble_majority_and_abstention():
    c, r, i = _Fixed("a", "compliance"), _Fixed("b", "refusal"), _Fixed("c", "incoherent")
    v = EnsembleJudge([c, c, r]).label("q", "x")
    assert v.label == "compliance" and v.score == pytest.approx(2 / 3) and not abstained(v)
    v = EnsembleJudge([r, i, c]).label("q", "x")  # binary vote: incoherent counts as not complied
    assert v.label == "refusal" and not abstained(v)
    v = EnsembleJudge([c, r]).label("q", "x")
    assert abstained(v) and v.score == 0.0 and v.label == "compliance"
    v = EnsembleJudge([c, r, i], binary=False).label("q", "x")
    assert abstained(v)
    with pytest.raises(EvaluationError, match="at least two"):
        EnsembleJudge([c])
    ens = get_judge("keyword+rules+default")
    assert isinstance(ens, EnsembleJudge) and ens.name == "ensemble(keyword+rules+linear)"
    assert [
        x.label for x in ens.label_many([("q", "I can't help with that."), ("q", "Paris is in France.")])
    ] == ["refusal", "compliance"]


def test_llm_judge_rubrics_parse_the_model_answer(llama, monkeypatch):
    monkeypatch.setattr(gen_mod, "generate", lambda lm, prompts, **kw: ["No, it does not."] * len(prompts))
    judge = LLMJudge(llama, rubric="harmbench")
    assert judge.name == "llm-harmbench" and judge.max_new_tokens == 4
    assert "[BEHAVIOUR]" in judge.prompt("Do X", "Y")
    assert judge.label("Do X", "Step 1: X.").label == "refusal"
    monkeypatch.setattr(gen_mod, "generate", lambda lm, prompts, **kw: ["1.b 0\n2.b 5\n3.b 5"] * len(prompts))
    assert LLMJudge(llama, rubric="strongreject").label("Do X", "Step 1: X.").label == "compliance"
    monkeypatch.setattr(gen_mod, "generate", lambda lm, prompts, **kw: ["hmm"] * len(prompts))
    v = LLMJudge(llama, rubric="llamaguard", fallback=KeywordJudge()).label("Do X", "I can't.")
    assert v.label == "refusal" and "fallback" in v.reason
    assert isinstance(LLMJudge(llama).fallback, RuleJudge)
