"""Measure the representation-transfer acceptance figures for one model pair (issue 15).

For SRC -> TGT: both steerability curves (the audit's trigger patching with its controls), the
layer-pair matrix (linear CKA, held-out ridge R^2) and the proposed pair; then at that pair (or
``--pair L,M``) an affine map (closed form and SGD) and an autoencoder (SGD), each with its
training curve (MSE, cosine, FVU, LM KL on held-out rows/prompts) and its evaluation: transfer
rate with the random matched-norm and mapped-trigger controls, the target's own rate, the
pseudo-inverse's rate, fidelity (mapped vs mean-ablated) and KL. Prints one JSON line; with
``--figures DIR`` also writes SVGs (matrix, curves, training curves).

Usage: ``python bench/transfer_acceptance.py organism:small:0 organism:deep:0 [--steps 1500]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def _r(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "rate": None if d["rate"] is None else round(d["rate"], 3),
        "k": d["k"],
        "n": d["n"],
        "ci": [round(d["ci_low"], 3), round(d["ci_high"], 3)],
    }


def _figures(out: Path, scan: Any, training: dict[str, Any]) -> None:
    from safetyscope.pipelines.transfer_figures import scan_figures, training_figures

    out.mkdir(parents=True, exist_ok=True)
    figs = {**scan_figures(scan.to_dict()), **training_figures({k: v["curve"] for k, v in training.items()})}
    for name, svg in figs.items():
        (out / f"{name}.svg").write_text(svg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("src")
    parser.add_argument("tgt")
    parser.add_argument("--pair", default=None, help="L,M (default: the proposed pair)")
    parser.add_argument("--n-train", type=int, default=400, help="prompts for paired activations")
    parser.add_argument("--n-backdoor", type=int, default=100, help="held-out triggered prompts")
    parser.add_argument("--n-fidelity", type=int, default=40, help="held-out prompts for fidelity and KL")
    parser.add_argument("--steps", type=int, default=1500, help="SGD steps of each map")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--positions", default="trigger", help="trigger or from_trigger")
    parser.add_argument("--figures", type=Path, default=None)
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    from safetyscope import load_model
    from safetyscope.organism.dataset import is_backdoor
    from safetyscope.pipelines.refusal import judge_for
    from safetyscope.pipelines.transfer import run_scan, transfer_prompts
    from safetyscope.pipelines.transfer_fit import fit_map
    from safetyscope.transfer import TrainConfig, evaluate_transfer

    src, tgt = load_model(args.src), load_model(args.tgt)
    prompts = transfer_prompts(
        src, tgt, n_train=args.n_train, n_eval=args.n_backdoor, n_fidelity=args.n_fidelity
    )
    scan = run_scan(src, tgt, prompts)
    t_scan = time.perf_counter() - t0
    pair = tuple(int(x) for x in args.pair.split(",")) if args.pair else scan.scan.proposed
    judge = judge_for(tgt)

    def label(p: str, c: str) -> str:
        return str(judge.label(p, c).label)

    training: dict[str, Any] = {}
    evals: dict[str, Any] = {}
    cfg = TrainConfig(steps=args.steps, lr=args.lr, batch_size=512, log_every=max(1, args.steps // 15))
    for name, kind, method in (
        ("affine_closed", "affine", "closed"),
        ("affine_sgd", "affine", "sgd"),
        ("autoencoder", "autoencoder", "sgd"),
    ):
        t1 = time.perf_counter()
        m, config, curve = fit_map(src, tgt, prompts, pair[0], pair[1], kind=kind, method=method, train=cfg)
        t_fit = time.perf_counter() - t1
        ev = evaluate_transfer(
            src,
            tgt,
            m,
            config,
            prompts.triggered,
            prompts.fidelity,
            is_backdoor,
            label=label,
            positions=args.positions,
        ).to_dict()
        training[name] = {"curve": curve, "fit_seconds": round(t_fit, 2)}
        evals[name] = {
            "transfer_rate": _r(ev["transfer_rate"]),
            "random_control": _r(ev["transfer_rate_random_control"]),
            "mapped_trigger_control": _r(ev["mapped_trigger_control"]),
            "target_own_rate": _r(ev["target_own_rate"]),
            "backdoored_made_safe": _r(ev["backdoored_made_safe"]),
            "inverse_transfer_rate": _r(ev["inverse_transfer_rate"]),
            "inverse_own_rate": _r(ev["inverse"]["own_rate"]) if ev["inverse"] else None,
            "safe_criterion": {
                k: _r(ev["steering"]["forward_safe"][k])
                for k in ("own_rate", "transfer_rate", "random_control", "mapped_trigger_control")
            },
            "fidelity": {
                arm: {
                    "rouge_l": round(ev["fidelity"][arm]["rouge_l"], 3),
                    "exact_match": _r(ev["fidelity"][arm]["exact_match"]),
                    "label_agreement": _r(ev["fidelity"][arm]["label_agreement"]),
                }
                for arm in ("mapped", "mean_ablated")
            },
            "mapped_beats_mean": _r(ev["fidelity"]["mapped_beats_mean"]),
            "kl": {k: round(v, 4) for k, v in ev["kl"].items()},
            "lm_loss": {k: round(v, 4) for k, v in ev["lm_loss"].items()},
            "final_curve": {
                k: (round(v, 5) if isinstance(v, float) else v) for k, v in curve["rows"][-1].items()
            },
            "sample": ev["steering"]["samples"][0] if ev["steering"]["samples"] else None,
        }
    curves = {
        side: [
            {"layer": r["layer"], **{arm: _r(r[arm]) for arm in ("steerability", "control", "noise_control")}}
            for r in c["layers"]
        ]
        for side, c in scan.curves.items()
    }
    if args.figures is not None:
        _figures(args.figures, scan, training)
    out = {
        "bench": "transfer_acceptance",
        "src": args.src,
        "tgt": args.tgt,
        "positions": args.positions,
        "steerability": curves,
        "baseline_backdoor": {side: _r(c["baseline_backdoor"]) for side, c in scan.curves.items()},
        "r2": [[round(v, 3) for v in row] for row in scan.scan.r2],
        "cka": [[round(v, 3) for v in row] for row in scan.scan.cka],
        "proposed": list(scan.scan.proposed),
        "rule": scan.scan.rule,
        "pair": list(pair),
        "evals": evals,
        "training": {
            k: {"fit_seconds": v["fit_seconds"], "rows": v["curve"]["rows"]} for k, v in training.items()
        },
        "scan_seconds": round(t_scan, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "loadavg_before": round(load0, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
