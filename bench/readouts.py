"""Readouts benchmark: the probe table and the Mahalanobis monitor on one model, one JSON line.

Measures, on the model's refusal prompt splits (the organism corpus, or ``--harmful/--harmless``
files; for real models the bundled prompts by default):

* the probe table (linear, poly2, poly3, MLP, suffix) by layer: held-out accuracy, AUC,
  selectivity; the fitting time of each kind as a ratio to the linear probe's (same run);
* the Mahalanobis monitor: test AUROC by layer, the ensemble's AUROC and the shuffled-label
  control's, flag rates at the threshold; the activation-collection time and the fit time.

    python bench/readouts.py [--model organism] [--layers all] [--n-train 64 --n-val 32 --n-test 100]
                             [--skip-probes] [--kinds linear,poly2,poly3,mlp,suffix]

Real models without ``--harmful/--harmless`` use the bundled prompt files.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import safetyscope.data.bundled as bundled
from safetyscope import load_model
from safetyscope.activations import parse_layers
from safetyscope.analysis.monitor import monitor_study
from safetyscope.analysis.nonlinear_probes import mlp_fitter, polynomial_fitter
from safetyscope.analysis.probes import probe_layers
from safetyscope.analysis.suffix import default_suffix, with_suffix
from safetyscope.pipelines.readouts import layer_acts
from safetyscope.pipelines.refusal import is_organism, refusal_prompts


def main() -> None:
    """Run and print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="organism")
    ap.add_argument("--harmful", type=Path)
    ap.add_argument("--harmless", type=Path)
    ap.add_argument("--layers", default="all")
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--kinds", default="linear,poly2,poly3,mlp,suffix")
    ap.add_argument("--skip-probes", action="store_true")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    t0 = time.perf_counter()
    lm = load_model(args.model, dtype=args.dtype)
    harmful, harmless = args.harmful, args.harmless
    if harmful is None and not is_organism(lm):
        root = Path(bundled.__file__).parent
        harmful, harmless = root / "harmful.txt", root / "harmless.txt"
    p = refusal_prompts(lm, harmful, harmless, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test)
    layers = parse_layers(args.layers, lm.n_layers)
    load_s = time.perf_counter() - t0
    out: dict[str, object] = {
        "bench": "readouts",
        "model": args.model,
        "layers": layers,
        "machine": platform.node(),
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 1),
        "n": {
            "train": len(p.harmful_train),
            "val": len(p.harmful_val),
            "test": [len(p.harmful_test), len(p.harmless_test)],
        },
    }
    t = time.perf_counter()
    splits = {
        f"{c}_{s}": layer_acts(lm, getattr(p, f"{c}_{s}"), layers)
        for s in ("train", "val", "test")
        for c in ("harmful", "harmless")
    }
    out["collect_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    _, rep = monitor_study(splits, layers, top_k=3, n_controls=3)
    out["monitor_s"] = round(time.perf_counter() - t, 2)
    out["monitor"] = {
        "auroc_by_layer": {x.layer: round(x.test_auroc, 4) for x in rep.layers},
        "control_auroc_by_layer": {x.layer: round(x.control_auroc, 4) for x in rep.layers},
        "ensemble": rep.ensemble,
        "ensemble_auroc": round(rep.ensemble_auroc, 4),
        "control_ensemble_auroc": round(rep.control_ensemble_auroc, 4),
        "best_layer": rep.best_layer,
        "tpr": rep.tpr.to_dict(),
        "fpr": rep.fpr.to_dict(),
    }
    if not args.skip_probes:
        a = torch.cat([splits["harmful_train"], splits["harmful_val"]])
        b = torch.cat([splits["harmless_train"], splits["harmless_val"]])
        fitters = {
            "linear": None,
            "poly2": polynomial_fitter(2),
            "poly3": polynomial_fitter(3),
            "mlp": mlp_fitter(),
        }
        probes: dict[str, object] = {}
        secs: dict[str, float] = {}
        for kind in args.kinds.split(","):
            t = time.perf_counter()
            if kind == "suffix":
                sfx = default_suffix(lm.tokenizer)
                sa = layer_acts(lm, with_suffix(p.harmful_train + p.harmful_val, sfx), layers)
                sb = layer_acts(lm, with_suffix(p.harmless_train + p.harmless_val, sfx), layers)
                r = probe_layers(sa, sb, layers=layers, n_controls=3, method="suffix")
                out["suffix"] = sfx
            else:
                r = probe_layers(a, b, layers=layers, n_controls=3, fit=fitters[kind], method=kind)
            secs[kind] = time.perf_counter() - t
            probes[kind] = {
                x.layer: {"acc": round(x.accuracy, 3), "auc": round(x.auc, 3), "sel": round(x.selectivity, 3)}
                for x in r.layers
            }
        out["probes"] = probes
        out["probe_s"] = {k: round(v, 2) for k, v in secs.items()}
        if "linear" in secs:
            out["probe_time_vs_linear"] = {k: round(v / secs["linear"], 2) for k, v in secs.items()}
    out["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
