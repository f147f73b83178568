"""Splicing: an identity map on one model changes nothing; mean ablation does; KL against lm_kl."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tests.transfer.conftest import PROMPTS

from safetyscope.activations.sites import Site
from safetyscope.transfer import (
    AffineMap,
    TransferError,
    collect_pairs,
    fit_affine,
    splice_generate,
    splice_scores,
)


def _identity(d: int) -> AffineMap:
    m = AffineMap(d, d)
    with torch.no_grad():
        m.linear.weight.copy_(torch.eye(d))
        m.linear.bias.zero_()
    return m


def test_identity_splice_is_exact(two_lms: tuple[Any, Any]) -> None:
    _, b = two_lms
    ids = [list(b.chat.encode(p).input_ids) for p in PROMPTS[:6]]
    ident = _identity(48)
    mean = torch.zeros(48)
    sc = splice_scores(b, b, ids, ident, mean, Site(1), Site(1))
    assert max(sc["kl_mapped"]) < 1e-9
    assert sc["nll_mapped"] == pytest.approx(sc["nll_true"], abs=1e-9)
    assert min(sc["kl_mean"]) > 1e-4  # zero ablation moves the distribution
    true = splice_generate(b, b, ids, "true", max_new_tokens=6)
    mapped = splice_generate(
        b, b, ids, "mapped", map_fn=ident, src_site=Site(1), tgt_site=Site(1), max_new_tokens=6
    )
    assert mapped == true


def test_spliced_generation_equals_naive_recompute(two_lms: tuple[Any, Any]) -> None:
    """KV-cached lock-step generation vs recomputing both models on the whole sequence each step."""
    a, b = two_lms
    pairs = collect_pairs(a, b, PROMPTS, [2], [1])
    m = fit_affine(*pairs.xy(2, 1))
    ids = [list(b.chat.encode(p).input_ids) for p in PROMPTS[:3]]
    fast = splice_generate(
        a, b, ids, "mapped", map_fn=m, src_site=Site(2), tgt_site=Site(1), max_new_tokens=4
    )
    from safetyscope.activations.hooks import edit

    for seq, got in zip(ids, fast, strict=True):
        cur = list(seq)
        out: list[int] = []
        for _ in range(4):
            t = torch.tensor([cur])
            with torch.no_grad():
                hs = a.model(t, output_hidden_states=True).hidden_states[2]
                with edit(b.arch, [Site(1)], lambda _s, h, hs=hs: m(hs)):
                    nxt = int(b.model(t).logits[0, -1].argmax())
            out.append(nxt)
            cur.append(nxt)
        eos = b.tokenizer.eos_token_id
        assert got == (out[: out.index(eos)] if eos in out else out)


def test_kl_matches_lm_kl_formula(two_lms: tuple[Any, Any]) -> None:
    from safetyscope.activations.hooks import edit
    from safetyscope.transfer import lm_kl

    a, b = two_lms
    pairs = collect_pairs(a, b, PROMPTS, [1], [2])
    m = fit_affine(*pairs.xy(1, 2))
    seq = list(b.chat.encode(PROMPTS[3]).input_ids)
    sc = splice_scores(a, b, [seq], m, torch.zeros(48), Site(1), Site(2))
    t = torch.tensor([seq])
    with torch.no_grad():
        hs = a.model(t, output_hidden_states=True).hidden_states[1]
        true = b.model(t).logits
        with edit(b.arch, [Site(2)], lambda _s, h: m(hs)):
            mapped = b.model(t).logits
    assert sc["kl_mapped"][0] == pytest.approx(float(lm_kl(true, mapped)), rel=1e-4)


def test_bad_mode(two_lms: tuple[Any, Any]) -> None:
    with pytest.raises(TransferError, match="Unknown splice mode"):
        splice_generate(*two_lms, [[1, 2]], "noise")
    with pytest.raises(TransferError, match="needs a map"):
        splice_generate(*two_lms, [[1, 2]], "mapped")
