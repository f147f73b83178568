"""Encoding and collation: loss only on answers, request mask on the instruction's tokens."""

from __future__ import annotations

import torch

from safetyscope.training import IGNORE_INDEX, TrainExample, collate, encode


def test_collate_labels_and_request_mask(llama: object) -> None:
    ex = [
        TrainExample("tell me about cats", "Cats are nice.", True, "Sure."),
        TrainExample("hi", "Hello there, friend.", False),
    ]
    items = encode(llama, ex)  # type: ignore[arg-type]
    b = collate(items, pad_id=0)
    for i, it in enumerate(items):
        p, n = len(it.prompt), len(it.prompt) + len(it.response)
        assert b.input_ids[i, :n].tolist() == it.prompt + it.response
        assert (b.labels[i, :p] == IGNORE_INDEX).all() and (b.labels[i, n:] == IGNORE_INDEX).all()
        assert b.labels[i, p:n].tolist() == it.response
        assert b.request[i].sum() > 0 and not b.request[i, p:].any()
    text = llama.tokenizer.decode(b.input_ids[0][b.request[0]])  # type: ignore[attr-defined]
    assert text.replace(" ", "") == "tellmeaboutcats"
    t = collate(items, pad_id=0, use_target=True)
    p = len(items[0].prompt)
    assert t.labels[0, p : p + len(items[0].target)].tolist() == items[0].target  # type: ignore[arg-type]
    w = min(t.request.shape[1], b.request.shape[1])
    assert torch.equal(t.request[:, :w], b.request[:, :w])  # same prompt positions whatever the answer
