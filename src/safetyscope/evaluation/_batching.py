"""Shared batching machinery: model/tokenizer unpacking, prompt encoding, length-sorted batches
with out-of-memory back-off, and an optional progress bar. Left padding (with mask-derived
position ids) is :func:`safetyscope.batching.pad_left`.

Everything here calls the model's ordinary ``forward``/``generate``, so forward hooks registered
on the model (interventions) are active during evaluation.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from safetyscope.batching import is_oom
from safetyscope.errors import PromptError
from safetyscope.model.chat import ChatFormatter
from safetyscope.model.loading import LoadedModel

T = TypeVar("T")

#: Show a progress bar only when a job has at least this many batches; fewer finish too fast to watch.
PROGRESS_MIN_BATCHES = 4

#: Substrings of the messages torch/the OS use for allocation failures (CUDA, MPS, CPU allocator).

ModelLike = LoadedModel | tuple[Any, Any]


def unpack(lm: ModelLike) -> tuple[Any, Any, ChatFormatter]:
    """``(model, tokenizer, chat formatter)`` from a :class:`LoadedModel` or a ``(model, tokenizer)`` pair."""
    if isinstance(lm, LoadedModel):
        return lm.model, lm.tokenizer, lm.chat
    if isinstance(lm, tuple) and len(lm) == 2:
        model, tokenizer = lm
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return model, tokenizer, ChatFormatter(tokenizer)
    raise TypeError(f"Expected a LoadedModel or a (model, tokenizer) pair, got {type(lm).__name__}.")


def model_device(model: Any) -> torch.device:
    """Device of the input embedding (where input ids must go)."""
    return model.get_input_embeddings().weight.device


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id (falls back to EOS, then 0); pads are always masked out."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def check_texts(texts: Sequence[str], what: str) -> list[str]:
    """Validate a non-empty list of non-empty strings (raises :class:`PromptError`)."""
    if isinstance(texts, str):
        raise PromptError(f"{what} must be a list of strings, not a single string.")
    items = list(texts)
    if not items:
        raise PromptError(f"{what} is empty; give at least one string.")
    for i, text in enumerate(items):
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"{what}[{i}] must be a non-empty string, got {text!r}.")
    return items


def encode_prompts(tokenizer: Any, chat: ChatFormatter, instructions: Sequence[str]) -> list[list[int]]:
    """Chat-format and tokenize instructions exactly as ``ChatFormatter.encode`` does (no extra specials)."""
    texts = [chat.format(text) for text in instructions]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_batched(
    lengths: Sequence[int],
    batch_size: int,
    fn: Callable[[list[int]], Sequence[T]],
    *,
    progress: bool = True,
    description: str = "evaluating",
) -> list[T]:
    """Apply ``fn`` to length-sorted batches of item indices and return results in input order.

    Items are sorted longest first, so padding is minimal and an out-of-memory failure shows up
    on the first (largest) batch. On OOM the batch size is halved and the batch retried; an OOM
    at batch size 1 is re-raised.

    Args:
        lengths: token length of each item (sort key).
        batch_size: initial number of items per call.
        fn: maps a list of item indices to one result per index, in the same order.
        progress: show a rich progress bar (on stderr) when there are many batches.
        description: label of the progress bar.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(lengths)
    order = sorted(range(n), key=lambda i: -lengths[i])
    results: list[Any] = [None] * n
    show = progress and -(-n // batch_size) >= PROGRESS_MIN_BATCHES
    bar = _progress_bar() if show else None
    task = bar.add_task(description, total=n) if bar is not None else None
    if bar is not None:
        bar.start()
    try:
        pos, size = 0, batch_size
        while pos < n:
            idx = order[pos:pos + size]
            try:
                out = list(fn(idx))
            except Exception as exc:  # OOM comes as several exception types
                if not is_oom(exc) or size == 1:
                    raise
                size = max(1, size // 2)
                _free_memory()
                continue
            if len(out) != len(idx):
                raise RuntimeError(f"batch function returned {len(out)} results for {len(idx)} items")
            for i, value in zip(idx, out, strict=True):
                results[i] = value
            pos += len(idx)
            if bar is not None and task is not None:
                bar.advance(task, len(idx))
    finally:
        if bar is not None:
            bar.stop()
    return results


def _progress_bar() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)
