"""Measure the directions and interventions acceptance figures on the tiny organism, with controls.

Prints one JSON line: probe accuracy / selectivity and the SVD spectrum (top-1, top-2) per
layer, cos(DIM, PCA) per layer, the selected direction, and held-out refusal rates (95% Wilson
intervals) under ablation, addition, the orthogonalized model and CAST, each next to its
random-direction control. Usage: ``python bench/organism_acceptance.py [--n 100] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import time

from safetyscope import load_model
from safetyscope.analysis.probes import probe_layers
from safetyscope.causal import Arm, direction_arms, random_like, run_arms
from safetyscope.directions.contrast import collect_contrast
from safetyscope.directions.extract import extract
from safetyscope.directions.geometry import paired_spectrum
from safetyscope.interventions.conditional import fit_condition
from safetyscope.interventions.hooks import ablate, add
from safetyscope.interventions.weights import orthogonalize
from safetyscope.organism.dataset import build_corpus
from safetyscope.organism.judge import OrganismJudge
from safetyscope.pipelines.organism import load_or_build_organism
from safetyscope.pipelines.refusal import refusal_prompts, select


def rate(report, arm, name):  # type: ignore[no-untyped-def]
    r = report.arms[arm].refusal[name]
    return {"rate": r.rate, "ci": [round(r.ci_low, 3), round(r.ci_high, 3)], "n": r.n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="held-out prompts per set")
    parser.add_argument("--seed", type=int, default=0, help="organism seed")
    args = parser.parse_args()
    start = time.perf_counter()
    lm = load_model(load_or_build_organism("tiny", args.seed))
    corpus = build_corpus(seed=0, n_train=3000, n_eval=200)
    harmful, harmless = corpus.prompts("harmful", "train")[:100], corpus.prompts("harmless", "train")[:100]
    contrast = collect_contrast(lm, harmful, harmless)
    layers = list(range(lm.n_layers))
    probes = probe_layers(contrast.harmful, contrast.harmless)
    geometry = {}
    for i, layer in enumerate(layers):
        spec = paired_spectrum(contrast.harmful[:, i], contrast.harmless[:, i], layer=layer)
        dim = extract(contrast.harmful[:, i], contrast.harmless[:, i], "diff_means")
        pca = extract(contrast.harmful[:, i], contrast.harmless[:, i], "pca")
        p = probes.at(layer)
        geometry[layer] = {"top1": round(spec.top1, 4), "top2": round(spec.top2, 4),
                           "cos_dim_pca": round(abs(dim.cosine(pca)), 4), "probe_acc": p.accuracy,
                           "probe_control_acc": p.control_accuracy, "selectivity": round(p.selectivity, 3)}
    prompts = refusal_prompts(lm, n_test=args.n)
    sel, _ = select(lm, prompts)
    sets = {"harmful": prompts.harmful_test, "harmless": prompts.harmless_test}
    judge = OrganismJudge()
    abl = run_arms(lm, direction_arms(lm, lambda v: ablate(lm, v), sel.direction), sets, judge,
                   intervention="ablate", max_new_tokens=16)
    addr = run_arms(lm, direction_arms(lm, lambda v: add(lm, v, layers=[sel.best.layer], positions="prompt"),
                                       sel.direction), {"harmless": sets["harmless"]}, judge, intervention="add",
                    max_new_tokens=16)
    orth = run_arms(lm, [Arm("orthogonalized", orthogonalize(lm, sel.direction)),
                         Arm("control", orthogonalize(lm, random_like(sel.direction, 0)))],
                    {"harmful": sets["harmful"]}, judge, intervention="orthogonalize", max_new_tokens=16)
    train = corpus.examples("harmless", "train")
    target = [e.instruction for e in train if e.category == "cooking"]
    others = [e.instruction for e in train if e.category != "cooking"]
    cond = fit_condition(lm, target[:80], others[:400], target[80:], others[400:600], layer=1)
    held = corpus.examples("harmless", "eval")
    cast_sets = {"target": [e.instruction for e in held if e.category == "cooking"],
                 "others": [e.instruction for e in held if e.category != "cooking"]}
    cast_report = run_arms(lm, [Arm("cast", lm, lambda: cond.steer(lm, sel.direction, 1.0, [sel.best.layer]))],
                           cast_sets, judge, intervention="cast", kl_set=None, max_new_tokens=16)
    out = {
        "bench": "organism_acceptance", "organism_seed": args.seed, "geometry_by_layer": geometry,
        "selected": {"layer": sel.best.layer, "eoi_position": sel.best.position, "bypass": round(sel.best.bypass, 3),
                     "induce": round(sel.best.induce, 3), "kl": round(sel.best.kl, 4)},
        "ablation": {"baseline_harmful": rate(abl, "baseline", "harmful"), "ablated_harmful": rate(abl, "intervened", "harmful"),
                     "control_harmful": rate(abl, "control", "harmful"), "ablated_harmless": rate(abl, "intervened", "harmless"),
                     "kl_first_token": abl.arms["intervened"].kl_first_token,
                     "kl_continuation": abl.arms["intervened"].kl_continuation,
                     "control_kl_first_token": abl.arms["control"].kl_first_token},
        "addition": {"baseline_harmless": rate(addr, "baseline", "harmless"), "added_harmless": rate(addr, "intervened", "harmless"),
                     "control_harmless": rate(addr, "control", "harmless")},
        "orthogonalized": {"harmful": rate(orth, "orthogonalized", "harmful"), "control_harmful": rate(orth, "control", "harmful")},
        "cast": {"threshold_val_accuracy": cond.threshold.accuracy, "target_cooking": rate(cast_report, "cast", "target"),
                 "other_categories": rate(cast_report, "cast", "others")},
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
