"""The chat template's common opening runs once: equal logits, also under edits and row blocks."""

from __future__ import annotations

import contextlib

import pytest
import torch

from safetyscope import load_model
from safetyscope.evaluation.logits import forward_logits, forward_logits_shared_prefix, shared_prefix_length
from safetyscope.evaluation.refusal_score import last_token_logits, last_token_logits_under
from safetyscope.interventions.hooks import ablate, add
from safetyscope.model.tiny import TINY_FAMILIES

PROMPTS = ["hi", "tell me a story about cats", "what?", "abc def ghi jkl mno", "why is the sky blue"]


def test_shared_prefix_length() -> None:
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # one token of each is left to run
    assert shared_prefix_length([[7], [1, 2]]) == 0


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_equal_to_the_full_forward_on_every_family(tiny_dir, family: str) -> None:
    lm = load_model(tiny_dir(family))
    pad = lm.tokenizer.pad_token_id
    seqs = [lm.chat.encode(p).input_ids for p in PROMPTS]
    assert shared_prefix_length(seqs) >= 4  # the template's opening is shared
    full = forward_logits(lm.model, seqs, pad, keep=3)
    shared = forward_logits_shared_prefix(lm.model, seqs, pad, keep=3)
    torch.testing.assert_close(shared, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_equal_under_edits_and_row_blocks(tiny_dir, family: str) -> None:
    lm = load_model(tiny_dir(family))
    g = torch.Generator().manual_seed(0)
    v, w = torch.randn(lm.d_model, generator=g) * 3, torch.randn(lm.d_model, generator=g) * 3
    contexts = [contextlib.nullcontext, lambda: ablate(lm, v), lambda: add(lm, w, 1.0, lm.n_layers // 2)]
    shared = last_token_logits_under(lm, PROMPTS, contexts, batch_size=9, share_prefix=True)
    for i, make in enumerate(contexts):
        with make():
            torch.testing.assert_close(shared[i], last_token_logits(lm, PROMPTS), rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(last_token_logits(lm, PROMPTS, share_prefix=True), shared[i],
                                       rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text"])
def test_sliding_window_families_share_the_prefix_when_it_fits_the_window(tiny_dir, family: str) -> None:
    lm = load_model(tiny_dir(family))
    lm.model.config.sliding_window = 4096  # the tiny configs use 16, shorter than the prompts
    seqs = [lm.chat.encode(p).input_ids for p in PROMPTS]
    pad = lm.tokenizer.pad_token_id
    calls: list[int] = []
    hook = lm.model.get_input_embeddings().register_forward_hook(lambda _m, i, _o: calls.append(i[0].shape[1]))
    try:
        shared = forward_logits_shared_prefix(lm.model, seqs, pad, keep=2)
    finally:
        hook.remove()
    assert len(calls) == 2 and calls[0] == shared_prefix_length(seqs)  # prefix pass, then the suffixes
    torch.testing.assert_close(shared, forward_logits(lm.model, seqs, pad, keep=2), rtol=1e-4, atol=1e-4)
