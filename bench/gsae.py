"""GSAE against a plain ReLU+L1 SAE at (about) equal L0 on one model: reconstruction (L0, FVU, CE
recovered), the refusal concept cone, and steering with the latent group vs the single best latent vs
random latents (the control). Prints one JSON line.

Both SAEs train on the same streamed activations (one stream) with the same seed, steps and L1
coefficient grid: the GSAE at ``--l1``, the plain SAE at ``--l1`` times each factor of
``--plain-factors``; the plain SAE whose L0 is closest to the GSAE's is the comparison (the others
are reported too). Steering (:func:`safetyscope.pipelines.gsae.group_steering`) adds each vector at
norm ``--scale`` x the diff-in-means gap on held-out harmless prompts and ablates each span on
held-out harmful prompts; refusal rates with Wilson intervals.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 15 python bench/gsae.py organism [--site 2:resid_pre]
        [--d-sae 384] [--steps 800] [--l1 0.01] [--graph-coeff 0.1] [--m 8] [--n-test 50]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from safetyscope import load_model
from safetyscope.pipelines.gsae import group_steering
from safetyscope.sae import TrainConfig, load_corpus, stream_activations, train_sae
from safetyscope.sae.evaluate import evaluate_sae
from safetyscope.sae.saelens import parse_site


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="organism")
    ap.add_argument("--site", default="2:resid_pre")
    ap.add_argument("--corpus", default="organism:1000")
    ap.add_argument("--eval-corpus", default="organism:300")
    ap.add_argument("--d-sae", type=int, default=384)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--l1", type=float, default=0.01)
    ap.add_argument("--plain-factors", default="0.7,1,1.4")
    ap.add_argument("--graph-coeff", type=float, default=0.1)
    ap.add_argument("--graph-k", type=int, default=8)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    lm = load_model(args.model)
    site = parse_site(args.site, lm.n_layers)
    data = load_corpus(lm, args.corpus, "all", seed=args.seed)
    store = stream_activations(lm, data, site, progress=False)
    ev = load_corpus(lm, args.eval_corpus, "all", seed=args.seed + 1000)
    ev_store = stream_activations(lm, ev, site, progress=False)

    def run(arch: str, l1: float) -> tuple[object, dict[str, object]]:
        cfg = TrainConfig(
            architecture=arch,
            d_sae=args.d_sae,
            steps=args.steps,
            batch_size=args.batch_size,
            l1_coeff=l1,
            graph_coeff=args.graph_coeff,
            graph_k=args.graph_k,
            seed=args.seed,
        )
        res = train_sae(store, cfg, progress=False)
        m = evaluate_sae(lm, res.sae, site, ev_store, ev, progress=False)
        graph = res.history[-1].get("graph")
        return res.sae, {
            "arch": arch,
            "l1": l1,
            "l0": m.l0,
            "fvu": m.fvu,
            "ce_loss_recovered": m.ce_loss_recovered,
            "dead": m.dead_fraction,
            "final_graph_penalty": graph,
            "train_seconds": res.seconds,
        }

    gsae, g_row = run("gsae", args.l1)
    plains = [run("standard", args.l1 * float(f)) for f in args.plain_factors.split(",")]
    plain, p_row = min(plains, key=lambda p: abs(float(p[1]["l0"]) - float(g_row["l0"])))  # type: ignore[arg-type]
    from safetyscope.sae.graph import coactivation_graph, laplacian_penalty, normalized_laplacian

    lap = normalized_laplacian(
        coactivation_graph(next(store.batches(2048, seed=1, buffer_rows=4096)), args.graph_k)
    )
    studies = {}
    for name, sae in (("gsae", gsae), ("plain", plain)):
        s = group_steering(
            lm,
            sae,
            site,
            m=args.m,
            scale=args.scale,
            n_test=args.n_test,
            seed=args.seed,
            max_new_tokens=args.max_new_tokens,
        )
        studies[name] = {
            "cone": s.cone.to_dict(),
            "alpha": s.alpha,
            "random_latents": s.random_latents,
            "graph_penalty_of_decoder": float(laplacian_penalty(sae.W_dec.detach().double(), lap.double())),
            **{k: v for k, v in s.summary.items() if k != "seconds"},
        }
    print(
        json.dumps(
            {
                "model": args.model,
                "site": site.key,
                "d_sae": args.d_sae,
                "steps": args.steps,
                "train_rows": store.n_rows,
                "eval_rows": ev_store.n_rows,
                "gsae": g_row,
                "plain": p_row,
                "plain_grid": [p[1] for p in plains],
                "studies": studies,
                "m": args.m,
                "scale": args.scale,
                "n_test": args.n_test,
                "threads": torch.get_num_threads(),
                "seconds": time.perf_counter() - t0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
