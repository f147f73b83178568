"""SAE memory and throughput benchmark: peak RSS of stream + train at N and 10N tokens.

Each size runs in a fresh subprocess (peak RSS only grows), on the tiny organism, at its refusal
site (L1.resid_post): stream N tokens of the organism corpus into safetensors shards on disk, then
train a TopK SAE for a fixed number of steps reading those shards through the shuffle buffer.
The baseline is the same 10N run with the shards kept in memory. Prints one JSON line:
peak RSS (MiB) at N and 10N from disk, their ratio, the in-memory 10N baseline, and throughputs.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 15 python bench/sae.py [--tokens 10000] [--steps 100]

With the defaults, training at 10N reads every row once (100 steps x 1024 rows = 10N).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def child(tokens: int, steps: int, disk: bool) -> dict[str, float]:
    import torch

    from safetyscope import load_model
    from safetyscope.activations import Site
    from safetyscope.sae import TrainConfig, load_corpus, stream_activations, train_sae

    torch.set_num_threads(1)
    lm = load_model("organism")
    site = Site(1, "resid_post")
    n_seq = 1
    corpus = load_corpus(lm, "organism:64")
    per_seq = corpus.n_tokens / len(corpus.seqs)
    n_seq = max(4, int(tokens / per_seq))
    corpus = load_corpus(lm, f"organism:{n_seq}")
    with tempfile.TemporaryDirectory() as tmp:
        store = stream_activations(lm, corpus, site, Path(tmp) / "shards" if disk else None, shard_rows=4096,
                                  progress=False)
        cfg = TrainConfig(architecture="topk", d_sae=768, k=32, steps=steps, batch_size=1024, buffer_rows=8192)
        res = train_sae(store, cfg, progress=False)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"tokens": store.n_rows, "peak_rss_mib": rss, "stream_tokens_per_s": store.n_rows / store.seconds,
            "train_tokens_per_s": res.tokens_per_second, "shards": len(store.shards)}


def run(tokens: int, steps: int, disk: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(tokens), "--steps", str(steps),
                          "--disk" if disk else "--memory"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--child", type=int, default=None)
    ap.add_argument("--disk", action="store_true")
    ap.add_argument("--memory", action="store_true")
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps, args.disk)))
        return
    small = run(args.tokens, args.steps, True)
    large = run(10 * args.tokens, args.steps, True)
    baseline = run(10 * args.tokens, args.steps, False)
    print(json.dumps({
        "tokens_N": small["tokens"], "tokens_10N": large["tokens"],
        "peak_rss_mib_N_disk": round(small["peak_rss_mib"], 1), "peak_rss_mib_10N_disk": round(large["peak_rss_mib"], 1),
        "rss_ratio_10N_over_N_disk": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3),
        "peak_rss_mib_10N_in_memory_baseline": round(baseline["peak_rss_mib"], 1),
        "rss_ratio_10N_in_memory_over_N_disk": round(baseline["peak_rss_mib"] / small["peak_rss_mib"], 3),
        "stream_tokens_per_s_10N": round(large["stream_tokens_per_s"]),
        "train_tokens_per_s_10N": round(large["train_tokens_per_s"]), "shards_10N": large["shards"],
        "steps": args.steps}))


if __name__ == "__main__":
    main()
