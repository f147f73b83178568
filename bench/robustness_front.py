"""The worst-case robustness front on one model: one JSON line of figures.

Run: PYTHONPATH=src python bench/robustness_front.py --model organism --trials 30
     PYTHONPATH=src python bench/robustness_front.py --model qwen2.5-coder-1.5b-instruct --trials 30 \
         --n-val 8 --n-test 16 --check 3 --max-new-tokens 16 --judge rules \
         --direction runs/qwen-full/cache/directions.safetensors   # an audit's cache: selected_unit
Non-organism models use the bundled harmful/harmless prompts. Baselines measured in the same run:
the un-edited model, the control (the lowest-refusal point's kernels with a random direction of
equal norm) and, with --direction, the single selected direction's full ablation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import safetyscope.data.bundled as bundled
from safetyscope import load_model
from safetyscope.pipelines.refusal import is_organism
from safetyscope.pipelines.robustness_front import robustness_front


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="organism")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--n-train", type=int, default=32)
    ap.add_argument("--n-val", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=32)
    ap.add_argument("--check", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--objective", default="share", help="share or prob")
    ap.add_argument("--judge", default=None)
    ap.add_argument("--direction", default=None, help="a selected direction file (its layer: --layer)")
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    lm = load_model(args.model)
    files = (
        {}
        if is_organism(lm)
        else {
            "harmful": Path(bundled.__file__).parent / "harmful.txt",
            "harmless": Path(bundled.__file__).parent / "harmless.txt",
        }
    )
    selected = None
    if args.direction:
        from safetensors.torch import load_file

        from safetyscope.directions import DirectionSet
        from safetyscope.directions.checks import DirectionError

        try:
            dset = DirectionSet.load(args.direction)
            selected = next(
                x for x in dset.directions if args.layer is None or x.layer == args.layer
            ).vector.float()
        except DirectionError:  # an audit cache's directions.safetensors: its selected unit direction
            selected = load_file(args.direction)["selected_unit"].float()
    out = Path(args.out or tempfile.mkdtemp(prefix="front-bench-"))
    res = robustness_front(
        lm,
        out,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        judge=args.judge,
        trials=args.trials,
        check=args.check,
        sampler=args.sampler,
        batch=args.batch,
        objective=args.objective,
        max_new_tokens=args.max_new_tokens,
        progress=False,
        selected=selected,
        **files,
    )
    data = res.to_dict()
    checks = {
        c["name"]: {
            "refusal": c["result"]["refusal"]["harmful"],
            "harmless_refusal": c["result"]["refusal"]["harmless"]["rate"],
            "incoherent": c["result"]["incoherent"]["harmful"]["rate"],
            "kl_first_token": c["result"]["kl_first_token"],
        }
        for c in data["checks"]
    }
    print(
        json.dumps(
            {
                "bench": "robustness_front",
                "model": args.model,
                "trials": len(res.trials),
                "front_size": len(res.front),
                "front": [
                    {
                        "number": t.number,
                        "refusal_obj": t.refusal,
                        "kl": round(t.kl, 5),
                        "direction_index": round(t.params.direction_index, 2),
                    }
                    for t in res.front
                ],
                "worst_case": data["worst_case"],
                "checks": checks,
                "n_val": res.provenance["n_val"],
                "n_test": res.provenance["n_test"],
                "judge": res.provenance["judge"],
                "search_s": res.provenance["search_s"],
                "s_per_trial": round(res.provenance["search_s"] / max(1, args.trials), 2),
                "total_s": round(time.perf_counter() - t0, 1),
                "out": str(out),
            }
        )
    )


if __name__ == "__main__":
    main()
