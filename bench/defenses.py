"""Defenses against direction attacks on the organism: SSFT vs circuit breakers vs extended refusal.

Trains (or reuses, when ``--root/NAME/training_card.json`` exists) three organisms:

* ``ssft``: SSFT of the base organism (the yardstick, measured in the same run);
* ``extended-refusal``: the same SSFT with extended refusals (explain, refuse, justify);
* ``circuit-breakers``: circuit breakers applied to the ``ssft`` model (as the paper applies them
  to an already-aligned model).

Then the robustness matrix with ``defenses=True``: harmful refusal and compliance with no edit,
after self-ablation (own direction), cross-model ablation (the other models' directions), and
weight orthogonalization with the own direction, each with a 95% Wilson interval and the
random-direction control; harmless refusal and the perplexity of the SSFT model's harmless
answers. Prints one JSON line with, per model, the drop in harmful refusal (points) under each
attack beside the paper's claim (Abu Shairah et al. 2025: at most 10 points for
extended-refusal models against 70-80 points normally), and the perplexity ratio to SSFT's.

Usage::

    python bench/defenses.py --root /tmp/defenses-bench [--base organism:tiny:0:behaviours=none]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from safetyscope.pipelines.robustness import robustness
from safetyscope.pipelines.training import run_training
from safetyscope.training import CARD_FILE, TrainingCard, TrainingConfig

PAPER = {
    "source": "An Embarrassingly Simple Defense Against LLM Abliteration Attacks (arXiv:2505.19056)",
    "abliteration_refusal_drop_points": {"extended_refusal_max": 10, "standard": [70, 80]},
}


def _train(name: str, base: str, method: str, root: Path, cfg: TrainingConfig) -> tuple[Path, float]:
    out = root / name
    t0 = time.perf_counter()
    if not (out / CARD_FILE).is_file():
        run_training(base, method, out, config=cfg, progress=False)
    return out, time.perf_counter() - t0


def _pts(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(100 * (before - after), 1)


def _summary(res: Any, i: int, names: list[str]) -> dict[str, Any]:
    base = res.baseline[i]["rate"]
    orth = res.orthogonalized[i]
    cross = {names[j]: res.matrix[i][j] for j in range(len(names)) if j != i}
    h = res.health[i]
    return {
        "harmful_refusal": res.baseline[i],
        "self_ablation": {
            "refusal": res.matrix[i][i],
            "ci": res.ci[i][i],
            "compliance": res.compliance[i][i],
        },
        "cross_ablation": {
            names[j]: {"refusal": res.matrix[i][j], "ci": res.ci[i][j], "compliance": res.compliance[i][j]}
            for j in range(len(names))
            if j != i
        },
        "orthogonalized": orth["direction"],
        "orthogonalized_control": orth["control"],
        "ablation_control": res.control[i],
        "drop_points": {
            "self_ablation": _pts(base, res.matrix[i][i]),
            "cross_ablation": {k: _pts(base, v) for k, v in cross.items()},
            "orthogonalized": _pts(base, orth["direction"]["refusal"]["rate"]),
            "random_control": _pts(base, res.control[i]["rate"]),
        },
        "harmless": h["harmless"],
        "perplexity": h["perplexity"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="organism:tiny:0:behaviours=none")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--cb-steps", type=int, default=60)
    ap.add_argument("--cb-lr", type=float, default=1e-3)
    ap.add_argument("--cb-alpha", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--selection", default="judged", help="score, judged or auto (see robustness)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    sft = TrainingConfig(method="ssft", steps=args.steps, lr=args.lr, seed=args.seed)
    ssft, t_ssft = _train("ssft", args.base, "ssft", args.root, sft)
    ext, t_ext = _train(
        "extended-refusal",
        args.base,
        "extended-refusal",
        args.root,
        TrainingConfig(method="extended-refusal", steps=args.steps, lr=args.lr, seed=args.seed),
    )
    cb, t_cb = _train(
        "circuit-breakers",
        str(ssft),
        "circuit-breakers",
        args.root,
        TrainingConfig(
            method="circuit-breakers",
            steps=args.cb_steps,
            lr=args.cb_lr,
            seed=args.seed,
            cb_alpha=args.cb_alpha,
        ),
    )
    names = ["ssft", "extended-refusal", "circuit-breakers"]
    cards = {n: TrainingCard.load(p) for n, p in zip(names, (ssft, ext, cb), strict=True)}
    t0 = time.perf_counter()
    res = robustness(
        [str(ssft), str(ext), str(cb)],
        n_test=args.n_test,
        by_layer=False,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        progress=False,
        defenses=True,
        selection=args.selection,
    )
    robust_s = time.perf_counter() - t0
    models = {n: _summary(res, i, names) for i, n in enumerate(names)}
    ppl0 = models["ssft"]["perplexity"]
    for n in names:
        models[n]["perplexity_vs_ssft"] = round(models[n]["perplexity"] / ppl0, 3)
        models[n]["train_seconds"] = cards[n].train_seconds
        models[n]["card_after"] = cards[n].after
        models[n]["train_vs_ssft"] = round(cards[n].train_seconds / cards["ssft"].train_seconds, 2)
    line = {
        "base": args.base,
        "steps": {"sft": args.steps, "cb": args.cb_steps},
        "max_new_tokens": args.max_new_tokens,
        "selection": args.selection,
        "n_test": args.n_test,
        "models": models,
        "directions": res.directions,
        "spectra": res.spectra,
        "robustness_seconds": round(robust_s, 1),
        "wall_train_seconds": {
            "ssft": round(t_ssft, 1),
            "extended-refusal": round(t_ext, 1),
            "cb": round(t_cb, 1),
        },
        "paper": PAPER,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
