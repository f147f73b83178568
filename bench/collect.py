"""Benchmark the activation engine against the usual ways of reading the residual stream.

Prints one JSON line per model with figures measured in the same run:

* ``overhead_vs_plain_forward``: ``collect`` at one mid layer with the full forward (early stop
  off) vs the same encode + batches + forward with no hooks (target <= 1.05);
* ``speedup_vs_hidden_states``: ``output_hidden_states=True`` (tokenizer padding, all layers
  materialised) vs ``collect`` with early stop, for a layer at one fifth of depth (target >= 3);
* ``early_stop_mid_vs_plain_forward``: ``collect`` with early stop at the mid layer vs the plain forward;
* ``peak_rss_mb_n{100,1000}``: peak resident memory of a fresh process computing streaming means
  over N prompts at every layer (target: flat in N);
* ``nnsight_ratio``: nnsight tracing time / ours for the 1/5-depth layer, when nnsight imports.

Usage: ``python bench/collect.py [--models organism smollm2-135m-instruct] [--n 64] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from safetyscope import load_model
from safetyscope.activations import Site, collect
from safetyscope.batching import pad_left
from safetyscope.model.loading import LoadedModel


def prompts(n: int) -> list[str]:
    """Organism-style instructions (harmful and harmless), deterministic."""
    from safetyscope.organism.dataset import build_corpus

    corpus = build_corpus(seed=0, n_train=max(n, 8), n_eval=8)
    return [ex.instruction for ex in corpus.all_train()][:n]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_forward(lm: LoadedModel, texts: list[str], batch: int) -> None:
    with torch.inference_mode():
        encoded = sorted((lm.chat.encode(t).input_ids for t in texts), key=len, reverse=True)
        for i in range(0, len(encoded), batch):
            lm.model(**pad_left(encoded[i:i + batch], lm.tokenizer.pad_token_id, lm.device), use_cache=False)


def hidden_states_mean(lm: LoadedModel, texts: list[str], layer: int, batch: int) -> torch.Tensor:
    total = torch.zeros(lm.d_model, dtype=torch.float64)
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            chunk = [lm.chat.format(t) for t in texts[i:i + batch]]
            enc = lm.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.device)
            hs = lm.model(**enc, output_hidden_states=True, use_cache=False).hidden_states
            total += hs[layer][:, -1].double().sum(0).cpu()
    return total / len(texts)


def nnsight_mean(spec: str, texts: list[str], layer: int, batch: int, repeats: int) -> float | None:
    try:
        from nnsight import LanguageModel
    except ImportError:
        return None
    lm = load_model(spec)
    wrapped = LanguageModel(lm.model, tokenizer=lm.tokenizer)
    layers = wrapped.model.layers

    def run() -> None:
        for i in range(0, len(texts), batch):
            chunk = [lm.chat.format(t) for t in texts[i:i + batch]]
            with wrapped.trace(chunk):
                layers[layer].output[:, -1].save()

    return median_time(run, repeats)


def peak_rss_mb(spec: str, n: int) -> float:
    """Peak RSS of a fresh process collecting streaming means at every layer over ``n`` prompts."""
    code = (
        "import resource,sys; sys.path.insert(0,'bench'); from collect import prompts;"
        "from safetyscope import load_model; from safetyscope.activations import Site, collect;"
        f"lm=load_model({spec!r}); p=prompts({n});"
        "collect(lm,p,[Site(i) for i in range(lm.n_layers)],'eoi','mean',batch_size=32,progress=False);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_model(spec: str, n: int, repeats: int, batch: int, memory: bool) -> dict[str, object]:
    lm = load_model(spec)
    texts = prompts(n)
    mid, fifth = lm.n_layers // 2, max(1, lm.n_layers // 5)
    plain = median_time(lambda: plain_forward(lm, texts, batch), repeats)
    hooked_full = median_time(lambda: collect(lm, texts, Site(mid), "last", "mean", batch_size=batch,
                                              stop_early=False, progress=False), repeats)
    hooked_mid = median_time(lambda: collect(lm, texts, Site(mid), "last", "mean", batch_size=batch,
                                             progress=False), repeats)
    ours_fifth = median_time(lambda: collect(lm, texts, Site(fifth), "last", "mean", batch_size=batch,
                                             progress=False), repeats)
    hidden = median_time(lambda: hidden_states_mean(lm, texts, fifth, batch), repeats)
    ours_mean = collect(lm, texts, Site(fifth), "last", "mean", batch_size=batch, progress=False).mean(Site(fifth))
    agree = torch.allclose(ours_mean, hidden_states_mean(lm, texts, fifth, batch), atol=1e-4)
    row: dict[str, object] = {
        "model": spec, "n_layers": lm.n_layers, "d_model": lm.d_model, "n_prompts": n, "batch": batch,
        "device": str(lm.device), "threads": torch.get_num_threads(),
        "plain_forward_s": round(plain, 4), "collect_mid_full_s": round(hooked_full, 4),
        "overhead_vs_plain_forward": round(hooked_full / plain, 3),
        "early_stop_mid_vs_plain_forward": round(hooked_mid / plain, 3),
        "hidden_states_fifth_s": round(hidden, 4), "collect_fifth_s": round(ours_fifth, 4),
        "speedup_vs_hidden_states": round(hidden / ours_fifth, 2), "means_agree_with_hidden_states": agree,
    }
    nn_time = nnsight_mean(spec, texts, fifth, batch, repeats)
    row["nnsight_ratio"] = round(nn_time / ours_fifth, 2) if nn_time else "nnsight not installed"
    if memory:
        m100, m1000 = peak_rss_mb(spec, 100), peak_rss_mb(spec, 1000)
        row.update(peak_rss_mb_n100=round(m100, 1), peak_rss_mb_n1000=round(m1000, 1),
                   peak_rss_ratio_1000_vs_100=round(m1000 / m100, 3))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["organism:tiny:0", "smollm2-135m-instruct"])
    parser.add_argument("--n", type=int, default=64, help="prompts per timing run")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the N=100 / N=1000 memory runs")
    args = parser.parse_args()
    from safetyscope.errors import ModelLoadError
    from safetyscope.pipelines.organism import load_or_build_organism

    for spec in args.models:
        if spec.startswith("organism"):
            parts = spec.split(":")
            load_or_build_organism(size=parts[1] if len(parts) > 1 else "tiny", seed=int(parts[2]) if len(parts) > 2 else 0)
        try:
            row = bench_model(spec, args.n, args.repeats, args.batch, not args.no_memory)
        except ModelLoadError as exc:
            row = {"model": spec, "skipped": str(exc)}
        row["max_rss_mb_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
