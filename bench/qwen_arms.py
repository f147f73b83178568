"""The Qwen full audit's intervention arms, from its cached direction (docs/qwen-refusal.md).

Runs the acceptance arms of issue "Real refusing models" with the audit's own code path
(``causal.run_arms``), prompts (bundled, seed 0, 64 held-out of each kind), judge (``rules``) and
budget (20 tokens), from ``RUN/cache/directions.safetensors`` of a finished ``audit --config``
run. Part ``a``: ablation on harmful and addition on harmless prompts, each beside its
equal-norm random control. Part ``b``: the weight-orthogonalized model and its control on
harmful prompts, plus the harmless first-token KL. The parts can run as two processes.

    python bench/qwen_arms.py a|b [--run runs/qwen-full] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import safetyscope.data.bundled as bundled
from safetyscope import load_model
from safetyscope.activations.sites import Site
from safetyscope.causal import Arm, direction_arms, random_like, run_arms
from safetyscope.evaluation.judges import get_judge
from safetyscope.evaluation.metrics import first_token_kl
from safetyscope.interventions.hooks import ablate, add
from safetyscope.interventions.weights import orthogonalize
from safetyscope.pipelines.refusal import refusal_prompts


def main() -> None:
    """Run one part and write ``OUT/qwen_arms_PART.json``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("part", choices=["a", "b"])
    ap.add_argument("--run", type=Path, default=Path("runs/qwen-full"))
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    lm = load_model("qwen2.5-coder-1.5b-instruct", dtype="auto")
    root = Path(bundled.__file__).parent
    prompts = refusal_prompts(lm, root / "harmful.txt", root / "harmless.txt", n_train=64, n_val=24, n_test=64)
    tensors = load_file(str(args.run / "cache" / "directions.safetensors"))
    unit, raw = tensors["selected_unit"].float(), tensors["selected_raw"].float()
    judge = get_judge("rules")
    kw = {"max_new_tokens": 20, "batch_size": 32, "kl_set": None}
    harmful, harmless = {"harmful": prompts.harmful_test}, {"harmless": prompts.harmless_test}
    out: dict[str, object] = {"layer": args.layer, "n_test": len(prompts.harmful_test)}
    if args.part == "a":
        arms = direction_arms(lm, lambda v: ablate(lm, v), unit)[1:]
        out["ablation_harmful"] = run_arms(lm, arms, harmful, judge, intervention="ablate", **kw).to_dict()
        arms = direction_arms(lm, lambda v: add(lm, v, 1.0, Site(args.layer), positions="prompt"), raw)[1:]
        out["addition_harmless"] = run_arms(lm, arms, harmless, judge, intervention="add", **kw).to_dict()
    else:
        for name, vec in (("intervened", unit), ("control", random_like(unit, 0))):
            edited = orthogonalize(lm, vec)
            rep = run_arms(lm, [Arm(name, edited)], harmful, judge, intervention="orthogonalize", **kw).to_dict()
            rep["kl_first_token_harmless"] = first_token_kl(lm, prompts.harmless_test, other=edited).mean
            out[f"ortho_{name}"] = rep
            del edited
            gc.collect()
    out["seconds"] = time.time() - t0
    (args.out / f"qwen_arms_{args.part}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({"part": args.part, "seconds": round(out["seconds"], 1)}))


if __name__ == "__main__":
    main()
