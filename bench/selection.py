"""Fast (first-order ranked) vs exhaustive causal direction selection on a real model.

Scores every layer x end-of-instruction position candidate of SmolLM2-135M-Instruct (bundled
prompt sets, the ``--quick`` audit's split sizes) twice: exhaustively (three exact forward
passes per candidate) and with the fast path (one forward + backward per validation set ranks
all candidates; the top ``--top-k`` are scored exactly). Prints one JSON line::

    {"fast_seconds", "exhaustive_seconds", "speedup", "same_choice", "exhaustive_best_rank_in_fast",
     "spearman_est_vs_exact_bypass", ...}

``same_choice`` is true when the fast best equals the exhaustive best or the exhaustive best is
in the fast path's top 3. Both modes rank every candidate (the model need not refuse).

    python bench/selection.py [--model smollm2-135m-instruct] [--top-k 5] [--layers all] [--threads 1]

An organism directory as ``--model`` uses its own corpus (it refuses, so candidates are eligible).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def _spearman(x: list[float], y: list[float]) -> float:
    rx = torch.tensor(x).argsort().argsort().double()
    ry = torch.tensor(y).argsort().argsort().double()
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx @ ry) / (rx.norm() * ry.norm()))


def main() -> None:
    """Run both selections and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--n-val", type=int, default=12)
    parser.add_argument("--layers", default="all", help="all, or e.g. 0-29 / 1,5,9")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from safetyscope import load_model
    from safetyscope.activations import parse_layers
    from safetyscope.causal import rank_candidates
    from safetyscope.data.bundled import bundled_path
    from safetyscope.pipelines.refusal import is_organism, refusal_prompts

    lm = load_model(args.model)
    if is_organism(lm):  # its own corpus (bundled prompts are outside its vocabulary)
        p = refusal_prompts(lm, None, None, args.n_train, args.n_val, 8, 0)
    else:
        p = refusal_prompts(lm, bundled_path("harmful"), bundled_path("harmless"), args.n_train, args.n_val, 8, 0)
    layers = parse_layers(args.layers, lm.n_layers)
    common = dict(layers=layers)
    sets = (lm, p.harmful_train, p.harmless_train, p.harmful_val, p.harmless_val)

    t0 = time.perf_counter()
    fast = rank_candidates(*sets, mode="fast", top_k=args.top_k, **common)
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = rank_candidates(*sets, mode="exhaustive", **common)
    full_s = time.perf_counter() - t0

    fast_order = [c.key for c in fast.candidates]
    best = full.best.key
    rank = fast_order.index(best) + 1 if best in fast_order else None
    est = {c.key: c.est_bypass for c in fast.candidates if c.est_bypass == c.est_bypass}
    exact = {c.key: c.bypass for c in full.candidates if c.exact and c.bypass == c.bypass}
    keys = sorted(set(est) & set(exact))
    print(json.dumps({
        "bench": "selection", "model": args.model, "n_layers": lm.n_layers, "layers": len(layers),
        "n_candidates": len(full.candidates), "n_scored_exhaustive": full.n_exact, "n_scored_fast": fast.n_exact,
        "top_k": args.top_k, "n_train": args.n_train, "n_val": args.n_val,
        "fast_seconds": round(fast_s, 2), "exhaustive_seconds": round(full_s, 2),
        "speedup": round(full_s / fast_s, 2),
        "same_choice": best == fast.best.key or best in fast_order[:3],
        "fast_best": list(fast.best.key), "exhaustive_best": list(best), "exhaustive_best_rank_in_fast": rank,
        "fast_best_eligible": fast.best.eligible, "exhaustive_best_eligible": full.best.eligible,
        "spearman_est_vs_exact_bypass": round(_spearman([est[k] for k in keys], [exact[k] for k in keys]), 3)
        if len(keys) > 2 else None,
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
