"""trace_prompt: raw prompts, explicit targets, per-prompt agreement and clear errors."""

from __future__ import annotations

import pytest
from tests.transcoders.helpers import random_transcoders

from safetyscope.errors import PromptError
from safetyscope.transcoders import prompt_agreement, prompt_ids, target_id, trace_prompt


def test_trace_raw_prompt_with_target(llama):
    tcs = random_transcoders(llama, k=3)
    tok = target_id(llama, "b")
    p = trace_prompt(llama, tcs, "abc def", raw=True, target="b", node_threshold=0.5)
    d = p.to_dict()
    logit = [n for n in d["nodes"] if n["kind"] == "logit"]
    assert len(logit) == 1 and logit[0]["feature"] == tok
    assert d["explained_share"] >= 0.5 and d["positions"] == len(prompt_ids(llama, "abc def", raw=True))
    agree = prompt_agreement(llama, {}, prompt_ids(llama, "abc def", raw=True))
    assert agree["replacement_top1_agreement"] == 1.0 and agree["replacement_kl"] == pytest.approx(
        0.0, abs=1e-9
    )


def test_errors(llama):
    with pytest.raises(PromptError, match="empty"):
        prompt_ids(llama, "   ", raw=True)
    with pytest.raises(PromptError, match="no token"):
        target_id(llama, "")
