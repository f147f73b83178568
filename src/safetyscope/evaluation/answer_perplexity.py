"""Perplexity of given answers to chat prompts: ``exp(mean NLL of the answer tokens | prompt)``.

The prompt is rendered by the model's chat formatter (the ids generation sees); only the answer
tokens are scored, so a model that answers harmless requests as before scores the same as before,
whatever the prompt costs. Used to show when a defense damages harmless behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from safetyscope.batching import pad_id, run_batched
from safetyscope.errors import EvaluationError
from safetyscope.evaluation.logits import forward_logits, nll_rows
from safetyscope.evaluation.metrics import PerplexityResult
from safetyscope.model.loading import LoadedModel

__all__ = ["answer_perplexity"]


def answer_perplexity(
    lm: LoadedModel,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> PerplexityResult:
    """Corpus perplexity of ``answers[i]`` after the chat-rendered ``prompts[i]`` (answer tokens only)."""
    if len(prompts) != len(answers):
        raise EvaluationError(f"{len(prompts)} prompts for {len(answers)} answers.")
    tok = lm.tokenizer
    seqs, starts = [], []
    for p, a in zip(prompts, answers, strict=True):
        head = lm.chat.encode(p).input_ids
        body = list(tok(a, add_special_tokens=False)["input_ids"])
        seqs.append([*head, *body])
        starts.append(len(head))
    pad = pad_id(tok)

    def run(idx: list[int]) -> list[tuple[float, int]]:
        batch = [seqs[i] for i in idx]
        logits = forward_logits(lm.model, batch, pad)
        width = logits.shape[1]
        out = []
        for row, i in enumerate(idx):
            seq, start = seqs[i], starts[i]
            if len(seq) <= start:
                out.append((0.0, 0))
                continue
            off = width - len(seq)  # left padding
            targets = torch.tensor(seq[start:], device=logits.device)
            nll = nll_rows(logits[row, off + start - 1 : off + len(seq) - 1], targets)
            out.append((float(nll.sum()), len(seq) - start))
        return out

    res = run_batched(
        [len(s) for s in seqs], batch_size, run, progress=progress, description="answer perplexity"
    )
    total, count = sum(r[0] for r in res), sum(r[1] for r in res)
    if count == 0:
        raise EvaluationError("No answer token to score: every answer is empty.")
    per = [math.exp(t / c) if c else None for t, c in res]
    return PerplexityResult(math.exp(total / count), total / count, count, per, 0)
