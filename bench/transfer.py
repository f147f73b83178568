"""Throughput of representation transfer: paired collection, map training, closed form vs SGD.

On two tiny random Llamas sharing one tokenizer (or ``--src``/``--tgt`` model specs), prints one
JSON line:

* ``collect_tokens_per_s``: paired activations (both models, every layer) per second, beside
  ``forward_tokens_per_s``, a plain full forward pass of both models on the same tokens (the
  baseline measured in the same run; the ratio is the collection overhead);
* ``train_tokens_per_s``: token rows per second of SGD (Adam, affine and autoencoder);
* ``closed_form_s`` vs ``sgd_s_to_match``: the closed-form ridge fit's time against the SGD time
  to reach the same held-out MSE (within ``--tol``), and their ratio.

Usage: ``python bench/transfer.py [--prompts 400] [--d-src 64 --d-tgt 96]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", default=None)
    parser.add_argument("--tgt", default=None)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--d-src", type=int, default=64)
    parser.add_argument("--d-tgt", type=int, default=96)
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument(
        "--tol", type=float, default=0.05, help="SGD matches when val MSE <= (1 + tol) x closed form"
    )
    args = parser.parse_args()
    import torch

    from safetyscope import load_model
    from safetyscope.batching import pad_left
    from safetyscope.model.tiny import save_tiny
    from safetyscope.transfer import TrainConfig, collect_pairs, fit_affine, make_map, train_map
    from safetyscope.transfer.train import evaluate

    load0 = os.getloadavg()[0]
    if args.src and args.tgt:
        src, tgt = load_model(args.src), load_model(args.tgt)
    else:
        root = Path(tempfile.mkdtemp())
        src = load_model(
            save_tiny("llama", root / "a", hidden_size=args.d_src, intermediate_size=2 * args.d_src)
        )
        tgt = load_model(
            save_tiny(
                "llama",
                root / "b",
                seed=1,
                hidden_size=args.d_tgt,
                intermediate_size=2 * args.d_tgt,
                num_hidden_layers=4,
            )
        )
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "box", "red", "big", "small"]
    g = torch.Generator().manual_seed(0)
    prompts = [
        " ".join(words[int(i)] for i in torch.randint(0, len(words), (int(n),), generator=g))
        for n in torch.randint(4, 16, (args.prompts,), generator=g)
    ]
    ids = [list(src.chat.encode(p).input_ids) for p in prompts]
    n_tok = sum(len(s) for s in ids)
    # baseline: plain forward passes of both models over the same tokens, same batch size
    t0 = time.perf_counter()
    with torch.inference_mode():
        for a in range(0, len(ids), 64):
            inputs = pad_left(ids[a : a + 64], 0, src.device)
            src.model(**inputs)
            tgt.model(**inputs)
    t_fwd = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = collect_pairs(src, tgt, prompts, list(range(src.n_layers)), list(range(tgt.n_layers)))
    t_col = time.perf_counter() - t0
    tr, va = pairs.split(0.2, 0)
    ls, lt = src.n_layers // 2, tgt.n_layers // 2
    x, y = tr.xy(ls, lt)
    xv, yv = va.xy(ls, lt)
    t0 = time.perf_counter()
    closed = fit_affine(x, y, 1e-6)
    t_closed = time.perf_counter() - t0
    target = evaluate(closed, xv, yv)["mse"]
    m = make_map("affine", x.shape[1], y.shape[1])
    hit: dict[str, float] = {}

    def stop(row: dict[str, float]) -> bool:
        if row["val_mse"] <= (1 + args.tol) * target:
            hit.update(row)
            return True
        return False

    t0 = time.perf_counter()
    curve = train_map(
        m, x, y, xv, yv, TrainConfig(steps=args.max_steps, lr=3e-3, batch_size=512, log_every=25), stop=stop
    )
    t_sgd = time.perf_counter() - t0
    rates = {"affine": curve.tokens_seen / max(curve.seconds, 1e-9)}
    ae = make_map("autoencoder", x.shape[1], y.shape[1])
    c2 = train_map(ae, x, y, xv, yv, TrainConfig(steps=300, lr=1e-3, batch_size=512, log_every=300))
    rates["autoencoder"] = c2.tokens_seen / max(c2.seconds, 1e-9)
    out = {
        "bench": "transfer",
        "src": src.spec,
        "tgt": tgt.spec,
        "d_src": src.d_model,
        "d_tgt": tgt.d_model,
        "layers": [src.n_layers, tgt.n_layers],
        "prompts": len(prompts),
        "tokens": n_tok,
        "collect_tokens_per_s": round(n_tok / t_col, 1),
        "forward_tokens_per_s": round(n_tok / t_fwd, 1),
        "collect_vs_forward": round(t_col / t_fwd, 2),
        "train_tokens_per_s": {k: round(v, 1) for k, v in rates.items()},
        "pair": [ls, lt],
        "train_rows": x.shape[0],
        "closed_form_s": round(t_closed, 4),
        "closed_form_val_mse": target,
        "sgd_matched": bool(hit),
        "sgd_steps_to_match": hit.get("step"),
        "sgd_s_to_match": round(t_sgd, 3),
        "sgd_val_mse": curve.last().get("val_mse"),
        "sgd_over_closed_time": round(t_sgd / max(t_closed, 1e-9), 1),
        "loadavg_before": round(load0, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
