"""Benchmark batched generation against one-prompt-at-a-time generation, in the same run.

Prints one JSON line: generated tokens per second for ``safetyscope.evaluation.generate`` with
``--batch-size`` prompts per call and with one prompt per call (same prompts, greedy, same
token budget), their ratio, and whether both produced identical completions.

The default model is the tiny organism (``organism:tiny:0``) when it has been built, otherwise a
tiny random llama saved to a temporary folder with :func:`safetyscope.model.tiny.save_tiny`.

Usage: ``python bench/generate.py [--model SPEC] [--n 32] [--max-new-tokens 32] [--batch-size 16]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from safetyscope import load_model
from safetyscope.errors import ModelLoadError
from safetyscope.evaluation.generate import generate_ids
from safetyscope.model.loading import LoadedModel
from safetyscope.model.tiny import save_tiny

T = TypeVar("T")

TOPICS = ["the water cycle", "photosynthesis", "a cat named Tom", "how to bake bread", "the moon landing",
          "prime numbers", "why the sky is blue", "a trip to the sea", "learning to code", "volcanoes",
          "how bees make honey", "the history of tea"]
TEMPLATES = ["Explain {}.", "Write a short story about {}.", "Give me three facts about {}.",
             "Summarize {} in one sentence, please, for a curious ten-year-old reader."]


def prompts(n: int) -> list[str]:
    """``n`` deterministic instructions of varied length."""
    return [TEMPLATES[i % len(TEMPLATES)].format(TOPICS[i % len(TOPICS)]) for i in range(n)]


def default_model(tmp: Path) -> tuple[LoadedModel, str]:
    """The tiny organism if built, else a tiny random llama."""
    try:
        return load_model("organism:tiny:0"), "organism:tiny:0"
    except ModelLoadError:
        path = save_tiny("llama", tmp / "tiny-llama", max_position_embeddings=512, n_positions=512)
        return load_model(path), "tiny random llama (save_tiny)"


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``(result, seconds)`` of ``fn()``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model spec for load_model (default: tiny organism/llama)")
    parser.add_argument("--n", type=int, default=32, help="number of prompts")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            lm, name = load_model(args.model), args.model
        else:
            lm, name = default_model(Path(tmp))
        texts = prompts(args.n)
        kwargs = dict(max_new_tokens=args.max_new_tokens, progress=False)
        generate_ids(lm, texts[:2], batch_size=2, **kwargs)  # warm-up
        batched, t_batched = timed(lambda: generate_ids(lm, texts, batch_size=args.batch_size, **kwargs))
        single, t_single = timed(lambda: [generate_ids(lm, [t], batch_size=1, **kwargs)[0] for t in texts])
    n_batched, n_single = sum(map(len, batched)), sum(map(len, single))
    print(json.dumps({
        "bench": "generate",
        "model": name,
        "device": str(lm.device),
        "dtype": str(lm.dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "n_prompts": args.n,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "tokens_generated": n_batched,
        "batched_tokens_per_s": round(n_batched / t_batched, 1),
        "one_at_a_time_tokens_per_s": round(n_single / t_single, 1),
        "speedup": round((n_batched / t_batched) / (n_single / t_single), 2),
        "outputs_identical": batched == single,
    }))


if __name__ == "__main__":
    main()
