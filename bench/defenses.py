"""Defenses against direction attacks on the organism: SSFT vs circuit breakers vs extended refusal.

Trains (or reuses, when ``--root/NAME/training_card.json`` exists), from ``--base`` (default:
the refusing tiny organism, as the paper fine-tunes already-aligned chat models):

* ``ssft``: SSFT with the corpus's ordinary refusals (the yardstick: same data, steps and lr);
* ``extended-refusal``: the same SSFT with extended refusals (explain, refuse, justify);
* ``circuit-breakers`` (one per ``--cb-retain`` multiplier λ): circuit breakers applied to the
  base (``--cb-from base``) or to the ``ssft`` model.

The base itself is the first row (unless ``--no-base-row``).

Then the robustness matrix with ``defenses=True``: harmful refusal and compliance with no edit,
after self-ablation (own direction), cross-model ablation (the other models' directions), and
weight orthogonalization with the own direction, every candidate direction ablated at once, each with a 95% Wilson interval and the
random-direction control; harmless refusal and the perplexity of the SSFT model's harmless
answers. Prints one JSON line with, per model, the drop in harmful refusal (points) under each
attack beside the paper's claim (Abu Shairah et al. 2025: at most 10 points for
extended-refusal models against 70-80 points normally), and the perplexity ratio to the first
model's (the base's: its own greedy harmless answers are the reference).

Usage::

    python bench/defenses.py --root /tmp/defenses-bench [--base organism] [--cb-retain 1,10]
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
        "subspace_ablation": orth["subspace_ablation"],
        "ablation_control": res.control[i],
        "drop_points": {
            "self_ablation": _pts(base, res.matrix[i][i]),
            "cross_ablation": {k: _pts(base, v) for k, v in cross.items()},
            "orthogonalized": _pts(base, orth["direction"]["refusal"]["rate"]),
            "random_control": _pts(base, res.control[i]["rate"]),
            "subspace_ablation": _pts(base, orth["subspace_ablation"]["subspace"]["refusal"]["rate"]),
            "subspace_control": _pts(base, orth["subspace_ablation"]["control"]["refusal"]["rate"]),
        },
        "harmless": h["harmless"],
        "perplexity": h["perplexity"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="organism", help="the model every variant is trained from")
    ap.add_argument("--no-base-row", action="store_true", help="leave the base out of the matrix")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--cb-from", default="base", choices=["base", "ssft"])
    ap.add_argument("--cb-steps", type=int, default=60)
    ap.add_argument("--cb-lr", type=float, default=1e-3)
    ap.add_argument("--cb-alpha", type=float, default=1.0)
    ap.add_argument("--cb-retain", default="1", help="comma-separated retain multipliers, one CB model each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--selection", default="judged", help="score, judged or auto (see robustness)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    walls: dict[str, float] = {}
    paths: dict[str, str] = {} if args.no_base_row else {"base": args.base}
    for method in ("ssft", "extended-refusal"):
        cfg = TrainingConfig(method=method, steps=args.steps, lr=args.lr, seed=args.seed)
        out, walls[method] = _train(method, args.base, method, args.root, cfg)
        paths[method] = str(out)
    cb_src = args.base if args.cb_from == "base" else paths["ssft"]
    for lam in (float(x) for x in args.cb_retain.split(",")):
        name = "circuit-breakers" if lam == 1 else f"circuit-breakers-retain{lam:g}"
        cfg = TrainingConfig(
            method="circuit-breakers",
            steps=args.cb_steps,
            lr=args.cb_lr,
            seed=args.seed,
            cb_alpha=args.cb_alpha,
            cb_retain=lam,
        )
        out, walls[name] = _train(name, cb_src, "circuit-breakers", args.root, cfg)
        paths[name] = str(out)
    names = list(paths)
    cards = {n: TrainingCard.load(Path(p)) for n, p in paths.items() if n != "base"}
    t0 = time.perf_counter()
    res = robustness(
        list(paths.values()),
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
    ppl0 = models[names[0]]["perplexity"]
    for n in names:
        models[n]["perplexity_vs_first"] = round(models[n]["perplexity"] / ppl0, 3)
        if n in cards:
            models[n]["train_seconds"] = cards[n].train_seconds
            models[n]["card_after"] = cards[n].after
            models[n]["train_vs_ssft"] = round(cards[n].train_seconds / cards["ssft"].train_seconds, 2)
    line = {
        "base": args.base,
        "cb_from": args.cb_from,
        "steps": {"sft": args.steps, "cb": args.cb_steps},
        "max_new_tokens": args.max_new_tokens,
        "selection": args.selection,
        "n_test": args.n_test,
        "models": models,
        "directions": res.directions,
        "spectra": res.spectra,
        "robustness_seconds": round(robust_s, 1),
        "wall_train_seconds": {k: round(v, 1) for k, v in walls.items()},
        "paper": PAPER,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
