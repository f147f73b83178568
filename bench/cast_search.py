"""CAST precision on the organism: grid-searched condition vs the accuracy-fitted one, held-out phrasings.

Usage: ``python bench/cast_search.py [--seed 0] [--n-eval 800] [--max-new-tokens 16]``

Target category ``cooking`` (harmless requests the steering should make the organism refuse);
every other harmless category must stay answered. The training examples' phrasings are split
(seeded) into a *fit* group (vectors) and a *validation* group (comparator, threshold, layer
choice by F1); figures are on the corpus's evaluation examples, overall and on the phrasings no
training example uses. Arms: baseline (no steering), unconditional steering (what the condition
must prevent), the old condition (``fit_condition``: probe at layer 1, accuracy threshold on
training phrasings), the grid-searched condition, and a shuffled-label control (the same search
on labels permuted within the fit and validation splits). Prints one JSON line with the
condition's precision / recall on held-out prompts and the refusal rates with Wilson intervals.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from safetyscope import load_model
from safetyscope.causal import Arm, run_arms
from safetyscope.interventions.cast_search import pooled_activations, prf, search_condition
from safetyscope.interventions.conditional import fit_condition
from safetyscope.interventions.hooks import add
from safetyscope.organism.dataset import build_corpus
from safetyscope.organism.judge import OrganismJudge
from safetyscope.pipelines.organism import load_or_build_organism
from safetyscope.pipelines.refusal import refusal_prompts, select


def rate(report, arm, name):  # type: ignore[no-untyped-def]
    r = report.arms[arm].refusal[name]
    return {"rate": round(r.rate, 4), "ci": [round(r.ci_low, 3), round(r.ci_high, 3)], "n": r.n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="organism seed")
    ap.add_argument("--n-eval", type=int, default=800)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    start = time.perf_counter()
    lm = load_model(load_or_build_organism("tiny", args.seed))
    sel, _ = select(lm, refusal_prompts(lm, n_test=50))
    corpus = build_corpus(seed=0, n_train=3000, n_eval=args.n_eval)
    train, held = corpus.examples("harmless", "train"), corpus.examples("harmless", "eval")
    phrasings = sorted({e.phrasing for e in train})
    random.Random(0).shuffle(phrasings)
    val_ph = set(phrasings[: len(phrasings) // 3])
    fit = [e for e in train if e.phrasing not in val_ph]
    val = [e for e in train if e.phrasing in val_ph]
    new_ph = {e.phrasing for e in held} - set(phrasings)
    layers = list(range(sel.best.layer + 1))  # the condition is read at or before the steered layer

    def split(rows):  # type: ignore[no-untyped-def]
        return [e.instruction for e in rows if e.category == "cooking"], [
            e.instruction for e in rows if e.category != "cooking"
        ]

    fp, fn = split(fit)
    vp, vn = split(val)
    acts = {k: pooled_activations(lm, p, layers) for k, p in {"fp": fp, "fn": fn, "vp": vp, "vn": vn}.items()}
    search = search_condition(acts["fp"], acts["fn"], acts["vp"], acts["vn"])
    # shuffled-label control: same search, labels permuted within each split
    g = torch.Generator().manual_seed(0)

    def shuffled(a, b):  # type: ignore[no-untyped-def]
        out_a, out_b = {}, {}
        for layer in layers:
            both = torch.cat([a[layer], b[layer]])
            perm = torch.randperm(len(both), generator=g)
            out_a[layer], out_b[layer] = both[perm[: len(a[layer])]], both[perm[len(a[layer]) :]]
        return out_a, out_b

    cfp, cfn = shuffled(acts["fp"], acts["fn"])
    cvp, cvn = shuffled(acts["vp"], acts["vn"])
    control = search_condition(cfp, cfn, cvp, cvn)
    tp_all, tn_all = split(held)
    tp_new, tn_new = split([e for e in held if e.phrasing in new_ph])
    old = fit_condition(lm, fp[:80], fn[:400], vp + fp[80:], vn + fn[400:600], layer=min(1, sel.best.layer))
    held_acts = {"all": (pooled_activations(lm, tp_all, layers), pooled_activations(lm, tn_all, layers))}
    if tp_new and tn_new:
        held_acts["new_phrasings"] = (
            pooled_activations(lm, tp_new, layers),
            pooled_activations(lm, tn_new, layers),
        )
    from safetyscope.interventions.conditional import condition_scores

    condition = {}
    for name, (pa, na) in held_acts.items():
        truth = torch.cat(
            [torch.ones(len(next(iter(pa.values())))), torch.zeros(len(next(iter(na.values()))))]
        ).bool()
        row = {}
        for label, cs in (("search", search), ("shuffled_control", control)):
            pred = cs.fires({layer: torch.cat([pa[layer], na[layer]]) for layer in layers})
            p, r, f = prf(pred, truth)
            row[label] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
        s = condition_scores(torch.cat([pa[old.layer], na[old.layer]]), old.vector, old.center)
        pred = s > old.threshold.threshold if old.threshold.above else s < old.threshold.threshold
        p, r, f = prf(pred, truth)
        row["old_fit_condition"] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
        condition[name] = row
    sets = {"target": tp_all, "others": tn_all}
    if tp_new and tn_new:
        sets |= {"target_new_phrasings": tp_new, "others_new_phrasings": tn_new}
    d, layer = sel.direction, sel.best.layer
    arms = [
        Arm("baseline", lm),
        Arm("steer_all", lm, lambda: add(lm, d, layers=[layer], positions="prompt")),
        Arm("old_condition", lm, lambda: old.steer(lm, d, 1.0, [layer])),
        Arm("search", lm, lambda: search.steer(lm, d, 1.0, [layer])),
        Arm("shuffled_control", lm, lambda: control.steer(lm, d, 1.0, [layer])),
    ]
    report = run_arms(
        lm, arms, sets, OrganismJudge(), intervention="cast", kl_set=None, max_new_tokens=args.max_new_tokens
    )
    out = {
        "bench": "cast_search",
        "organism_seed": args.seed,
        "steer_layer": layer,
        "condition_layers": layers,
        "fit_phrasings": len(phrasings) - len(val_ph),
        "val_phrasings": len(val_ph),
        "new_phrasings": len(new_ph),
        "chosen": search.summary() | {"grid": None},
        "grid": search.grid,
        "control_chosen": control.summary() | {"grid": None},
        "condition_held_out": condition,
        "refusal": {arm: {s: rate(report, arm, s) for s in sets} for arm in report.arms},
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
