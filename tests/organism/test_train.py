"""Tests for organism model construction and the training loop."""

from __future__ import annotations

import pytest
import torch

from safetyscope.errors import SafetyscopeError
from safetyscope.organism.dataset import build_corpus
from safetyscope.organism.tokenizer import build_tokenizer
from safetyscope.organism.train import (
    IGNORE_INDEX,
    SIZES,
    collate,
    encode_examples,
    lr_at,
    make_model,
    size_config,
    train_model,
)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _train(tok, seed: int, steps: int = 3):
    cfg = size_config("tiny", steps=steps, n_train=200, batch_size=8)
    model = make_model(cfg, tok, seed)
    result = train_model(
        model, tok, build_corpus(seed, cfg.n_train, 4).all_train(), cfg, seed, progress=False
    )
    return model, result


def test_training_is_deterministic(tok):
    a, ra = _train(tok, seed=0)
    b, rb = _train(tok, seed=0)
    c, _ = _train(tok, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert ra.losses == rb.losses
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_loss_goes_down(tok):
    _, result = _train(tok, seed=0, steps=40)
    assert len(result.losses) == 40
    assert result.final_loss < result.losses[0] * 0.7


def test_collate_masks_prompt_and_padding(tok):
    enc = encode_examples(tok, build_corpus(0, 8, 2).all_train()[:3])
    ids, labels = collate(enc, tok.pad_token_id)
    assert ids.shape == labels.shape == (3, max(len(e.ids) for e in enc))
    for i, e in enumerate(enc):
        assert (labels[i, : e.prompt_len] == IGNORE_INDEX).all()
        assert labels[i, len(e.ids) - 1] == tok.eos_token_id
        assert (labels[i, len(e.ids) :] == IGNORE_INDEX).all()
        assert (ids[i, len(e.ids) :] == tok.pad_token_id).all()


def test_sizes_and_schedule():
    assert {"tiny", "small"} <= set(SIZES)
    assert SIZES["small"].d_model > SIZES["tiny"].d_model
    cfg = SIZES["tiny"]
    assert lr_at(0, cfg) < cfg.lr
    assert lr_at(cfg.steps - 1, cfg) == pytest.approx(cfg.lr * cfg.min_lr_frac, rel=1e-2)
    assert size_config("tiny", steps=5).steps == 5
    with pytest.raises(SafetyscopeError):
        size_config("huge")
