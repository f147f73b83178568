"""Benchmark the batched stable-regions interpolation against a per-alpha loop.

For each model, the same interpolation (``--n`` different pairs, ``--steps`` alphas, site
``L0.resid_post``, final residual after the final norm) runs twice in one process:

* batched: every (pair, alpha) row in one call of :func:`safetyscope.analysis.readout.read_under`
  (the runner packs rows into token-budget batches), as :func:`stable_regions` does;
* loop: one call per alpha (all pairs of that alpha in it), the way a per-alpha script runs.

Prints one JSON line per model: seconds of each, ``batched_vs_loop_speedup`` and
``max_abs_diff`` between the two sets of final residuals (the acceptance bound is 1e-5 in
float32). A model that does not load prints a line with ``skipped``.

Usage: ``python bench/regions.py [--models organism,smollm2-135m-instruct] [--n 50] [--steps 21]``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from safetyscope import load_model
from safetyscope.activations import Site
from safetyscope.analysis.readout import read_last, read_under
from safetyscope.analysis.regions import alpha_grid, interpolation_rows
from safetyscope.analysis.sequences import default_texts, make_pairs, token_sequences
from safetyscope.errors import SafetyscopeError


def bench(spec: str, n: int, steps: int, seq_len: int) -> dict[str, object]:
    try:
        lm = load_model(spec, dtype="float32")
    except SafetyscopeError as exc:
        return {"model": spec, "skipped": str(exc)}
    texts, _ = default_texts(lm, n=4 * n)
    pairs = make_pairs(token_sequences(lm.tokenizer, texts, seq_len), "different", n, seed=0)
    site, alphas = Site(0, "resid_post"), alpha_grid(steps)
    acts = read_last(lm, pairs.seqs, [site])[site.key]
    seqs, points = interpolation_rows(pairs, acts, alphas, "line")
    read_under(lm, seqs[:steps], site, points[:steps])  # warm-up
    t0 = time.perf_counter()
    batched = read_under(lm, seqs, site, points).reshape(n, steps, -1)
    t_batched = time.perf_counter() - t0
    grid = points.reshape(n, steps, -1)
    a_seqs = [pairs.seqs[a] for a, _ in pairs.pairs]
    t0 = time.perf_counter()
    loop = torch.stack([read_under(lm, a_seqs, site, grid[:, k]) for k in range(steps)], dim=1)
    t_loop = time.perf_counter() - t0
    return {"model": spec, "n_pairs": n, "steps": steps, "seq_len": seq_len, "rows": n * steps,
            "batched_s": round(t_batched, 3), "loop_s": round(t_loop, 3),
            "batched_vs_loop_speedup": round(t_loop / t_batched, 2),
            "max_abs_diff": float((batched - loop).abs().max()), "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="organism,smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--seq-len", type=int, default=8)
    args = parser.parse_args()
    for spec in args.models.split(","):
        print(json.dumps(bench(spec.strip(), args.n, args.steps, args.seq_len)), flush=True)


if __name__ == "__main__":
    main()
