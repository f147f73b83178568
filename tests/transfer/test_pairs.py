"""Paired collection: rows equal each model's own hidden states at real tokens; padding never pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tests.transfer.conftest import PROMPTS

from safetyscope.transfer import TransferError, check_shared_tokenizer, collect_pairs


def test_rows_equal_unbatched_hidden_states(two_lms: tuple[Any, Any]) -> None:
    a, b = two_lms
    p = collect_pairs(a, b, PROMPTS, [0, 2], [1])
    assert p.src[2].shape[1] == 32 and p.tgt[1].shape[1] == 48
    n_tok = sum(len(a.chat.encode(q).input_ids) for q in PROMPTS)
    assert p.n_tokens == n_tok and p.provenance["n_tokens"] == n_tok
    for i in (0, 5, 23):  # one prompt at a time, no padding: hidden_states[L] is resid_pre of block L
        ids = torch.tensor([a.chat.encode(PROMPTS[i]).input_ids])
        with torch.no_grad():
            ha = a.model(ids, output_hidden_states=True).hidden_states
            hb = b.model(ids, output_hidden_states=True).hidden_states
        rows = p.prompt_index == i
        assert torch.equal(p.token_position[rows], torch.arange(ids.shape[1]))
        assert torch.allclose(p.src[2][rows], ha[2][0], atol=1e-5)
        assert torch.allclose(p.tgt[1][rows], hb[1][0], atol=1e-5)


def test_split_is_by_prompt(two_lms: tuple[Any, Any]) -> None:
    p = collect_pairs(*two_lms, PROMPTS, [1], [1])
    tr, va = p.split(0.25, seed=3)
    assert tr.n_tokens + va.n_tokens == p.n_tokens
    assert not set(tr.prompt_index.tolist()) & set(va.prompt_index.tolist())
    assert len(set(va.prompt_index.tolist())) == 6
    with pytest.raises(TransferError, match="not collected"):
        p.xy(0, 1)


def test_different_tokenizers_are_refused(two_lms: tuple[Any, Any], tmp_path: Path) -> None:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    q = load_model(save_tiny("qwen2", tmp_path / "q", chat=True))
    with pytest.raises(TransferError, match="tokenize prompt #0 differently"):
        check_shared_tokenizer(two_lms[0], q, PROMPTS)


def test_bad_layers(two_lms: tuple[Any, Any]) -> None:
    with pytest.raises(TransferError, match="target layers"):
        collect_pairs(*two_lms, PROMPTS, [0], [7])
    with pytest.raises(TransferError, match="No prompts"):
        collect_pairs(*two_lms, [], [0], [0])


def test_vocab_map_sends_target_tokens_to_the_source_by_string():
    from types import SimpleNamespace

    from safetyscope.organism.tokenizer import build_tokenizer
    from safetyscope.transfer.pairs import vocab_map

    v1, v2 = SimpleNamespace(tokenizer=build_tokenizer("v1")), SimpleNamespace(tokenizer=build_tokenizer("v2"))
    assert vocab_map(v1, v1) is None and vocab_map(v2, v1) is None  # the v1 words keep their ids in v2
    m = vocab_map(v1, v2)  # a v2 target's tokens read by a v1 source
    assert m is not None and m.shape == (len(v2.tokenizer),)
    s1, s2 = v1.tokenizer.convert_ids_to_tokens(list(range(len(v1.tokenizer)))), v2.tokenizer.convert_ids_to_tokens(
        list(range(len(v2.tokenizer))))
    for i, t in enumerate(s2):
        assert s1[int(m[i])] == t if t in s1 else int(m[i]) == v1.tokenizer.unk_token_id
    assert any(t not in s1 for t in s2)
