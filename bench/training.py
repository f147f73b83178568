"""Safety-train an organism three ways (SSFT, AT, LAT) and measure the LAT study's figures.

Prints one JSON line: per method the held-out refusal rates (95% Wilson) from the training
card, train seconds and the ratio to SSFT's (the yardstick measured in the same run: AT and LAT
cost ``1 + adv_steps`` forward/backward passes per step), then the robustness matrix (rows:
ablated model, cols: direction source), the random-direction control, the spectra (top-1, top-2
shares at each model's selected layer) and self-ablation by layer, beside the paper's figures
(Sheshadri et al. 2024 on Llama-2-7B: LAT top-2 ~0.75 vs ~0.44; self-ablation refusal 0.204
SSFT, 0.381 AT, 0.169 LAT).

Usage::

    python bench/training.py --base organism:tiny:0:behaviours=none --root /tmp/train-bench --steps 150

A variant already trained under ``--root`` (its card exists) is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from safetyscope.pipelines.robustness import robustness
from safetyscope.pipelines.training import run_training
from safetyscope.training import CARD_FILE, TrainingCard, TrainingConfig

PAPER = {
    "top2_lat": 0.75,
    "top2_reference": 0.44,
    "self_ablation": {"ssft": 0.204, "at": 0.381, "lat": 0.169},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="organism:tiny:0:behaviours=none")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--methods", default="ssft,at,lat")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epsilon", type=float, default=0.5)
    ap.add_argument("--adv-steps", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--no-layers", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    cards: dict[str, TrainingCard] = {}
    dirs = []
    for m in args.methods.split(","):
        out = args.root / f"{m}-seed{args.seed}"
        if not (out / CARD_FILE).is_file():
            run_training(
                args.base,
                m,
                out,
                config=TrainingConfig(
                    method=m,
                    steps=args.steps,
                    seed=args.seed,
                    lr=args.lr,
                    epsilon=args.epsilon,
                    adv_steps=args.adv_steps,
                ),
                progress=False,
            )
        cards[m] = TrainingCard.load(out)
        dirs.append(str(out))
    t0 = time.perf_counter()
    res = robustness(dirs, n_test=args.n_test, by_layer=not args.no_layers, progress=False)
    ssft = cards.get("ssft")
    line = {
        "base": args.base,
        "steps": args.steps,
        "seed": args.seed,
        "methods": {
            m: {
                "after": c.after,
                "before": c.before,
                "meets_targets": c.meets_targets,
                "train_seconds": c.train_seconds,
                "train_vs_ssft": round(c.train_seconds / ssft.train_seconds, 2) if ssft else None,
            }
            for m, c in cards.items()
        },
        "robustness": res.to_dict(),
        "robustness_seconds": round(time.perf_counter() - t0, 1),
        "paper": PAPER,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
