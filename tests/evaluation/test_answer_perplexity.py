"""Answer perplexity: only answer tokens scored, padding-invariant, equal to a naive loop."""

from __future__ import annotations

import math

import pytest
import torch

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.answer_perplexity import answer_perplexity


def test_answer_perplexity_matches_naive_loop(llama: object) -> None:
    lm = llama
    prompts, answers = ["Bake bread?", "How do I plant tulips in autumn?"], ["Mix flour and water.", "Dig."]
    res = answer_perplexity(lm, prompts, answers, batch_size=2)  # type: ignore[arg-type]
    total, count = 0.0, 0
    for p, a in zip(prompts, answers, strict=True):
        head = lm.chat.encode(p).input_ids  # type: ignore[attr-defined]
        body = lm.tokenizer(a, add_special_tokens=False)["input_ids"]  # type: ignore[attr-defined]
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([head + body])).logits[0].double()  # type: ignore[attr-defined]
        lp = torch.log_softmax(logits, -1)
        for k, tok in enumerate(body):
            total -= float(lp[len(head) + k - 1, tok])
            count += 1
    assert res.n_tokens == count
    assert res.perplexity == pytest.approx(math.exp(total / count), rel=1e-4)
    one = answer_perplexity(lm, prompts[:1], answers[:1], batch_size=1)  # type: ignore[arg-type]
    assert res.per_text[0] == pytest.approx(one.perplexity, rel=1e-4)  # padding does not matter
    with pytest.raises(EvaluationError, match="2 prompts for 1 answers"):
        answer_perplexity(lm, prompts, answers[:1])  # type: ignore[arg-type]
