"""Batched, KV-cached, left-padded generation from user instructions.

Instructions are rendered with the model's chat template (``lm.chat.format``), tokenized without
extra special tokens (exactly like ``ChatFormatter.encode``), sorted by token length and
generated in left-padded batches with ``model.generate`` (KV cache on). Decoding is greedy unless
``do_sample``. Results come back in input order, cut at the first end-of-sequence token.

Generation goes through the model's ordinary forward pass, so it can be called inside context
managers that register forward hooks (steering, ablation): every step sees the hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import GenerationConfig

from safetyscope.activations.hooks import RowBlock, enter_on_rows
from safetyscope.batching import (
    ModelLike,
    check_texts,
    encode_prompts,
    model_device,
    pad_id,
    pad_left,
    run_batched,
    unpack,
)

__all__ = ["eos_ids", "generate", "generate_ids", "generate_ids_under"]


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """All end-of-sequence ids: the tokenizer's EOS plus the model's generation-config EOS ids.

    Chat models often end a turn with a token other than the tokenizer's EOS (``<|eot_id|>``,
    ``<end_of_turn>``); their generation config lists it.
    """
    found: list[int] = []
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, config_eos):
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is not None and int(item) not in found:
                found.append(int(item))
    return found


def _generation_config(model: Any, tokenizer: Any, max_new_tokens: int, do_sample: bool,
                       temperature: float, top_p: float, top_k: int | None) -> GenerationConfig:
    """A complete config, so model defaults (repetition penalty, sampling) never leak in."""
    bos = getattr(model.generation_config, "bos_token_id", None) if hasattr(model, "generation_config") else None
    return GenerationConfig(
        max_new_tokens=max_new_tokens, min_new_tokens=0, do_sample=do_sample, num_beams=1,
        temperature=temperature if do_sample else 1.0, top_p=top_p if do_sample else 1.0,
        # top_k 0 disables top-k when sampling; 50 is the library default, which greedy ignores silently
        top_k=(top_k or 0) if do_sample else 50, repetition_penalty=1.0, no_repeat_ngram_size=0,
        pad_token_id=pad_id(tokenizer), eos_token_id=eos_ids(model, tokenizer), bos_token_id=bos,
        use_cache=True,
    )


def _cut_at_eos(row: Sequence[int], stops: set[int]) -> list[int]:
    out: list[int] = []
    for tok in row:
        if tok in stops:
            break
        out.append(int(tok))
    return out


def _check(max_new_tokens: int, do_sample: bool, temperature: float, top_p: float) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if do_sample and (temperature <= 0 or not 0 < top_p <= 1):
        raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")


@torch.no_grad()
def generate_ids(
    lm: ModelLike,
    instructions: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> list[list[int]]:
    """Generate and return the new token ids of each instruction (EOS and later tokens dropped).

    Same arguments as :func:`generate`; use this when exact token sequences matter (e.g. for
    teacher-forced metrics), since decoding and re-tokenizing text is not always lossless.
    """
    return generate_ids_under(lm, instructions, [contextlib.nullcontext], max_new_tokens=max_new_tokens,
                              batch_size=batch_size, do_sample=do_sample, temperature=temperature, top_p=top_p,
                              top_k=top_k, seed=seed, progress=progress)[0]


@torch.no_grad()
def generate_ids_under(
    lm: ModelLike,
    instructions: Sequence[str],
    contexts: Sequence[Callable[[], contextlib.AbstractContextManager[Any]]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> list[list[list[int]]]:
    """Generate every instruction under each of several interventions, all in shared batches.

    ``contexts`` are factories of intervention context managers built on
    :func:`safetyscope.activations.edit` (``lambda: ablate(lm, v)``, ``contextlib.nullcontext``
    for the unedited model). Each batch of ``batch_size`` prompts is repeated once per context
    (arm-major) and context ``i`` edits only block ``i`` of the rows
    (:func:`safetyscope.activations.only_rows`), so ``n`` arms take one ``generate`` call per
    batch instead of ``n``. Returns ``[arm][prompt]`` new token ids; greedy results equal
    generating each arm on its own.
    """
    items = check_texts(instructions, "instructions")
    _check(max_new_tokens, do_sample, temperature, top_p)
    if not contexts:
        raise ValueError("generate_ids_under needs at least one context")
    model, tokenizer, chat = unpack(lm)
    prompts = encode_prompts(tokenizer, chat, items)
    config = _generation_config(model, tokenizer, max_new_tokens, do_sample, temperature, top_p, top_k)
    stops = set(eos_ids(model, tokenizer))
    device = model_device(model)
    n = len(contexts)

    def run(idx: list[int]) -> list[list[list[int]]]:
        batch = pad_left([prompts[i] for i in idx], pad_id(tokenizer), device)
        ids, mask = batch["input_ids"].repeat(n, 1), batch["attention_mask"].repeat(n, 1)
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        rows = [_cut_at_eos(row, stops) for row in out[:, ids.shape[1]:].tolist()]
        return [[rows[a * len(idx) + j] for a in range(n)] for j in range(len(idx))]

    rng: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if do_sample and seed is not None:
        devices = [device] if device.type == "cuda" else []
        rng = torch.random.fork_rng(devices=devices)
    with rng, contextlib.ExitStack() as stack:
        if do_sample and seed is not None:
            torch.manual_seed(seed)
        for i, make in enumerate(contexts):
            enter_on_rows(stack, model, make, RowBlock(i, n))  # context i edits block i only
        per_prompt = run_batched([len(p) for p in prompts], batch_size, run, progress=progress,
                                 description="generating")
    return [[row[a] for row in per_prompt] for a in range(n)]


def generate(
    lm: ModelLike,
    instructions: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> list[str]:
    """Complete each instruction (chat template applied) and return the decoded completions.

    Args:
        lm: a :class:`~safetyscope.model.LoadedModel` or a ``(model, tokenizer)`` pair.
        instructions: user messages; the chat template (or the fallback template) is applied.
        max_new_tokens: generation budget per completion; generation stops earlier at EOS.
        batch_size: prompts per ``generate`` call; halved automatically on out-of-memory.
        do_sample: sample instead of greedy decoding.
        temperature: softmax temperature (sampling only).
        top_p: nucleus threshold (sampling only).
        top_k: optional top-k cut (sampling only; off by default).
        seed: makes sampling reproducible without touching the global RNG state. Note that
            sampled results still depend on the batch composition.
        progress: show a progress bar on stderr when there are many batches.

    Returns:
        One completion per instruction, in input order: new tokens only, cut at the first
        end-of-sequence token, special tokens removed, surrounding whitespace stripped.
    """
    ids = generate_ids(lm, instructions, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k,
                       seed=seed, progress=progress)
    _, tokenizer, _ = unpack(lm)
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
