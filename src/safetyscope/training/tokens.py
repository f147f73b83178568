"""Tokenised training examples: chat prompt + response + EOS, with the request-token mask.

The prompt is rendered by the model's :class:`~safetyscope.model.chat.ChatFormatter` (the same
ids every other safetyscope tool sees). ``request`` marks the tokens of the user's instruction
(inside the template): the positions the AT / LAT adversary perturbs. Batches are right-padded,
so the prompt tokens of a row sit at the same positions whatever response follows them, and
causal attention never lets a real token see the padding after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from safetyscope.model.loading import LoadedModel
from safetyscope.training.data import TrainExample

__all__ = ["IGNORE_INDEX", "Batch", "Encoded", "collate", "encode"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Encoded:
    """One example as ids: ``prompt`` (template applied), ``response`` and ``target`` (+ EOS)."""

    prompt: list[int]
    request: list[bool]
    response: list[int]
    target: list[int] | None
    harmful: bool


@dataclass
class Batch:
    """Right-padded ``input_ids`` / ``labels`` (loss on the answer only) and the request mask."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    request: torch.Tensor  # bool [b, t]
    harmful: torch.Tensor  # bool [b]


def _eos(lm: LoadedModel) -> list[int]:
    eos = lm.tokenizer.eos_token_id
    return [int(eos)] if eos is not None else []


def encode(lm: LoadedModel, examples: Sequence[TrainExample], max_response_tokens: int = 64) -> list[Encoded]:
    """Tokenise ``examples`` for ``lm`` (answers cut at ``max_response_tokens``, then EOS)."""
    out = []
    tok = lm.tokenizer
    for e in examples:
        enc = lm.chat.encode(e.instruction)
        start, end = enc.instruction_span
        request = [s >= start and t <= end and t > s for s, t in enc.offsets]
        resp = list(tok(e.response, add_special_tokens=False)["input_ids"])[:max_response_tokens] + _eos(lm)
        target = None
        if e.target is not None:
            target = list(tok(e.target, add_special_tokens=False)["input_ids"])[:max_response_tokens] + _eos(
                lm
            )
        out.append(Encoded(list(enc.input_ids), request, resp, target, e.harmful))
    return out


def collate(items: Sequence[Encoded], pad_id: int, use_target: bool = False) -> Batch:
    """Right-pad ``items``; answers are ``target`` (the adversary's) when ``use_target`` else ``response``."""
    rows = []
    for it in items:
        answer = it.target if use_target and it.target is not None else it.response
        rows.append((it.prompt, answer, it.request))
    width = max(len(p) + len(a) for p, a, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    request = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, a, r) in enumerate(rows):
        seq = torch.tensor(p + a, dtype=torch.long)
        ids[i, : len(seq)] = seq
        labels[i, len(p) : len(seq)] = seq[len(p) :]
        request[i, : len(r)] = torch.tensor(r, dtype=torch.bool)
    harmful = torch.tensor([it.harmful for it in items], dtype=torch.bool)
    return Batch(ids, labels, request, harmful)
