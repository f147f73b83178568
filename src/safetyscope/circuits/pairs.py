"""Clean/corrupted prompt pairs, tokenized once, with the forward passes every method shares."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.hooks import record
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_left
from safetyscope.causal.patch_spec import PatchingError
from safetyscope.causal.patching_prepare import encode_texts
from safetyscope.evaluation.logits import supports_logits_to_keep
from safetyscope.model.loading import LoadedModel


@dataclass
class Pairs:
    """Token ids of equal-length clean/corrupted pairs."""

    clean: list[list[int]]
    corrupt: list[list[int]]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.clean)

    @property
    def lengths(self) -> list[int]:
        """Token length of each pair."""
        return [len(c) for c in self.clean]


def encode_pairs(lm: LoadedModel, clean: Sequence[str], corrupt: Sequence[str], chat: bool = True) -> Pairs:
    """Tokenize the pairs (chat template unless ``chat=False``) and check they align token for token."""
    a, b = encode_texts(lm, clean, chat), encode_texts(lm, corrupt, chat)
    if len(a) != len(b):
        raise PatchingError(
            f"{len(a)} clean prompts but {len(b)} corrupted ones; give one corrupted prompt per "
            "clean prompt, in the same order."
        )
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if len(x) != len(y):
            raise PatchingError(
                f"Pair {i}: the clean prompt has {len(x)} tokens but the corrupted one has {len(y)}; "
                f"attribution needs equal-length pairs. Clean: {x.text!r}; corrupted: {y.text!r}."
            )
    return Pairs([e.input_ids for e in a], [e.input_ids for e in b], list(clean))


def token_length(lm: LoadedModel, text: str, chat: bool = True) -> int:
    """Token length of ``text`` (chat template unless ``chat=False``)."""
    return len(lm.chat.encode(text)) if chat else len(lm.tokenizer(text)["input_ids"])


def length_matched(
    lm: LoadedModel, first: Sequence[str], second: Sequence[str], chat: bool = True
) -> list[tuple[str, str]]:
    """Pair each prompt of ``first`` with an unused prompt of ``second`` of the same token length (the last
    unused one of that length; prompts of ``first`` without a partner are dropped)."""
    pool: dict[int, list[str]] = {}
    for text in second:
        pool.setdefault(token_length(lm, text, chat), []).append(text)
    out = []
    for text in first:
        match = pool.get(token_length(lm, text, chat))
        if match:
            out.append((text, match.pop()))
    return out


def same_length(
    lm: LoadedModel, pairs: Sequence[tuple[str, str]], n: int, chat: bool = True
) -> tuple[list[str], list[str]]:
    """Up to ``n`` pairs of equal token length, all of the most common such length: ``(clean, corrupted)``.

    Raises ``PatchingError`` when no pair has equal lengths.
    """
    ok = [(a, b, k) for a, b in pairs if (k := token_length(lm, a, chat)) == token_length(lm, b, chat)]
    if not ok:
        raise PatchingError(
            f"None of the {len(pairs)} prompt pairs has equal token lengths; attribution needs "
            "equal-length clean/corrupted pairs."
        )
    length = Counter(k for _, _, k in ok).most_common(1)[0][0]
    keep = [(a, b) for a, b, k in ok if k == length][:n]
    return [a for a, _ in keep], [b for _, b in keep]


def batches(pairs: Pairs, batch_size: int) -> Iterator[list[int]]:
    """Pair indices in length-sorted batches (the package's batching order)."""
    for idx, _ in iter_batches(pairs.lengths, lambda i: [None] * len(i), batch_size=batch_size):
        yield idx


def model_inputs(lm: LoadedModel, seqs: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Left-padded inputs for a forward pass that only needs the last position's logits."""
    inputs: dict[str, Any] = pad_left(seqs, int(lm.tokenizer.pad_token_id or 0), lm.device)
    inputs["use_cache"] = False
    if supports_logits_to_keep(lm.model):
        inputs["logits_to_keep"] = 1
    return inputs


def last_logits(
    lm: LoadedModel, seqs: Sequence[Sequence[int]], sites: Sequence[Site] = ()
) -> tuple[Tensor, dict[Site, Tensor]]:
    """Last-token logits (no gradient) and the activations at ``sites`` (left-padded, detached)."""
    seen: dict[Site, Tensor] = {}
    ctx = (
        record(lm.arch, list(sites), lambda s, h: seen.__setitem__(s, h.detach()), stop_early=False)
        if sites
        else nullcontext()
    )
    with torch.no_grad(), ctx:
        logits = lm.model(**model_inputs(lm, seqs)).logits[:, -1].float()
    return logits, seen


def pair_logits(lm: LoadedModel, pairs: Pairs, batch_size: int = 8) -> tuple[Tensor, Tensor]:
    """``(clean, corrupted)`` last-token logits, one row per pair."""
    out_a = torch.empty(len(pairs), lm.vocab_size)
    out_b = torch.empty(len(pairs), lm.vocab_size)
    for idx in batches(pairs, batch_size):
        out_a[idx] = last_logits(lm, [pairs.clean[i] for i in idx])[0].cpu()[:, : lm.vocab_size]
        out_b[idx] = last_logits(lm, [pairs.corrupt[i] for i in idx])[0].cpu()[:, : lm.vocab_size]
    return out_a, out_b
