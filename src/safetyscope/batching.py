"""The one batched runner: token budget, length-sorted left padding, OOM back-off, progress, streaming.

Collection, logits, refusal scoring, KL, generation and selection all run through
:func:`iter_batches` / :func:`run_batched`; nothing else in the package writes a batching loop.

* Items are sorted longest first, so padding is minimal and an out-of-memory failure shows up
  on the first (largest) batch.
* A batch holds at most ``batch_size`` items and at most ``max_batch_tokens`` padded tokens.
* On out-of-memory (CUDA, CPU allocator, ``MemoryError``) the batch size and the token budget
  are halved and the batch retried; an OOM with a single item is re-raised.
* :func:`iter_batches` streams ``(indices, results)`` per batch as they finish (so callers can
  checkpoint); :func:`run_batched` returns the results in input order.
* :func:`pad_left` builds the left-padded inputs with mask-derived position ids.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from safetyscope.errors import PromptError
from safetyscope.model.chat import ChatFormatter
from safetyscope.model.loading import LoadedModel

T = TypeVar("T")

#: Show a progress bar only when a job has at least this many batches; fewer finish too fast to watch.
PROGRESS_MIN_BATCHES = 4

_OOM_MARKERS = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")

ModelLike = LoadedModel | tuple[Any, Any]


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-pad token id lists; return ``input_ids``, ``attention_mask`` and matching ``position_ids``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": position_ids.to(device)}


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory failure (CUDA, CPU allocator or Python ``MemoryError``)."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


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


def cache_kwarg(model: Any) -> str:
    """The forward keyword of the KV cache: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    try:
        return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    except (TypeError, ValueError):
        return "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache of a model output, whatever the transformers version calls it."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


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


def free_memory() -> None:
    """Collect garbage and release cached accelerator memory (after an out-of-memory failure)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def progress_bar(description: str, total: int | None, show: bool = True) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar on stderr; yields ``advance(n)`` (a no-op when ``show`` is false)."""
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def sorted_order(lengths: Sequence[int]) -> list[int]:
    """Item indices, longest first (stable): the order in which :func:`iter_batches` runs them."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def iter_batches(
    lengths: Sequence[int],
    fn: Callable[[list[int]], Sequence[T]],
    *,
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    progress: bool = False,
    description: str = "running",
    start: int = 0,
) -> Iterator[tuple[list[int], list[T]]]:
    """Run ``fn`` on length-sorted batches of item indices; yield ``(indices, results)`` per batch.

    Args:
        lengths: token length of each item (sort key and token-budget unit).
        fn: maps a list of item indices to one result per index, in the same order.
        batch_size: most items per batch (``None``: only the token budget limits it).
        max_batch_tokens: most padded tokens (``items x longest``) per batch (``None``: no limit).
        progress: show a progress bar when there are at least :data:`PROGRESS_MIN_BATCHES` batches.
        description: label of the progress bar.
        start: skip the first ``start`` items of :func:`sorted_order` (resuming a checkpoint).
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_tokens is not None and max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    order = sorted_order(lengths)
    n = len(order)
    size, budget = batch_size, max_batch_tokens
    est = -(-n // batch_size) if batch_size else (-(-sum(lengths) // budget) if budget else 1)
    with progress_bar(description, n, progress and est >= PROGRESS_MIN_BATCHES) as advance:
        advance(start)
        pos = start
        while pos < n:
            longest = max(1, lengths[order[pos]])
            take = n - pos
            if size is not None:
                take = min(take, size)
            if budget is not None:
                take = min(take, max(1, budget // longest))
            idx = order[pos:pos + take]
            try:
                out = list(fn(idx))
            except Exception as exc:  # OOM comes as several exception types
                if not is_oom(exc) or take == 1:
                    raise
                size = max(1, take // 2)  # halve the batch that failed
                budget = None if budget is None else max(1, budget // 2)
                free_memory()
                continue
            if len(out) != len(idx):
                raise RuntimeError(f"batch function returned {len(out)} results for {len(idx)} items")
            pos += len(idx)
            advance(len(idx))
            yield idx, out


def run_batched(
    lengths: Sequence[int],
    batch_size: int | None,
    fn: Callable[[list[int]], Sequence[T]],
    *,
    max_batch_tokens: int | None = None,
    progress: bool = True,
    description: str = "evaluating",
) -> list[T]:
    """:func:`iter_batches`, with the results gathered back into input order."""
    results: list[Any] = [None] * len(lengths)
    for idx, out in iter_batches(lengths, fn, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                 progress=progress, description=description):
        for i, value in zip(idx, out, strict=True):
            results[i] = value
    return results
