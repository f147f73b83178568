"""COSMIC against the causal (refusal-token) selection on one model: sites, agreement, ablation effects.

Runs both selections on the same train / validation split, then ablates each chosen direction
(every layer and position) on held-out harmful and harmless prompts beside the un-edited
baseline and a random direction of equal norm (the control), judged by the organism judge (or
the default linear judge). Prints one JSON line::

    {"model", "cosmic": {"layer", "position", "score", "low_layers", "seconds"},
     "causal": {"layer", "position", "seconds"}, "same_site", "cosine",
     "ablation": {"cosmic": {...}, "causal": {...}}}

where each ablation entry holds harmful / harmless refusal with 95% Wilson intervals for the
intervened and control arms and the baseline.

    python bench/cosmic.py MODEL [--n-train 32] [--n-val 12] [--n-test 32] [--mode fast] [--no-eval]

MODEL is a registry name (``organism``, ``qwen2.5-coder-1.5b-instruct``) or a directory; a
non-organism model uses the bundled harmful / harmless prompt sets.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    """Run both selections (and their ablation arms) and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--n-val", type=int, default=12)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--mode", default="fast", choices=["fast", "exhaustive"])
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--no-eval", action="store_true", help="selection only (no generation)")
    parser.add_argument("--no-causal", action="store_true", help="skip the causal selection")
    parser.add_argument(
        "--judge", default=None, help="judge (default: the organism judge, else the linear judge)"
    )
    parser.add_argument(
        "--layers", default=None, help="candidate layers of the selections, e.g. 8-20 (default all)"
    )
    args = parser.parse_args()

    from safetyscope import load_model
    from safetyscope.activations import parse_layers
    from safetyscope.causal import direction_arms, run_arms
    from safetyscope.data.bundled import bundled_path
    from safetyscope.interventions.hooks import ablate
    from safetyscope.pipelines.refusal import is_organism, judge_for, refusal_prompts, select, select_cosmic

    lm = load_model(args.model)
    files = (None, None) if is_organism(lm) else (bundled_path("harmful"), bundled_path("harmless"))
    p = refusal_prompts(lm, *files, args.n_train, args.n_val, args.n_test, 0)
    sel_kw = {"layers": parse_layers(args.layers, lm.n_layers)} if args.layers else {}
    t0 = time.perf_counter()
    csel, cdir = select_cosmic(lm, p, mode=args.mode, **sel_kw)
    t_cosmic = time.perf_counter() - t0
    out: dict = {
        "model": args.model,
        "n": [len(p.harmful_train), len(p.harmful_val), len(p.harmful_test)],
        "cosmic": {
            "layer": csel.best.layer,
            "position": csel.best.position,
            "score": csel.best.score,
            "s_comply": csel.best.s_comply,
            "s_refuse": csel.best.s_refuse,
            "kl": csel.best.kl,
            "low_layers": csel.low_layers,
            "n_exact": sum(c.exact for c in csel.candidates),
            "n_candidates": len(csel.candidates),
            "seconds": round(t_cosmic, 2),
        },
    }
    dirs = {"cosmic": cdir}
    if not args.no_causal:
        from safetyscope.causal import SelectionError

        t0 = time.perf_counter()
        try:
            sel, kdir = select(lm, p, **sel_kw)
        except SelectionError as exc:  # the fast path can miss; score every candidate before giving up
            out["causal_fast_error"] = str(exc)
            try:
                sel, kdir = select(lm, p, mode="exhaustive", **sel_kw)
            except SelectionError as exc2:  # none passes: report the best-ranked candidate, flagged
                out["causal_exhaustive_error"] = str(exc2)
                sel, kdir = select(lm, p, mode="exhaustive", max_kl=float("inf"), prune_last=0.0, **sel_kw)
        out["causal"] = {
            "mode": sel.mode,
            "eligible_at_default_filters": "causal_exhaustive_error" not in out,
            "induce": sel.best.induce,
            "layer": sel.best.layer,
            "position": sel.best.position,
            "bypass": sel.best.bypass,
            "kl": sel.best.kl,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        out["same_site"] = (sel.best.layer, sel.best.position) == (csel.best.layer, csel.best.position)
        out["cosine"] = float(cdir.vector @ kdir.vector)
        # where the causal choice ranks among COSMIC's exact scores, and vice versa
        exact = [c.key for c in csel.candidates if c.exact]
        out["causal_rank_in_cosmic"] = exact.index(sel.best.key) + 1 if sel.best.key in exact else None
        dirs["causal"] = kdir
    if not args.no_eval:
        judge = judge_for(lm, args.judge)
        out["ablation"] = {}
        for name, d in dirs.items():
            report = run_arms(
                lm,
                direction_arms(lm, lambda v: ablate(lm, v), d.vector.float()),
                {"harmful": p.harmful_test, "harmless": p.harmless_test},
                judge,
                intervention="ablate",
                max_new_tokens=args.max_new_tokens,
            )
            out["ablation"][name] = {
                arm: {s: r.refusal[s].to_dict() for s in r.refusal} | {"kl_first_token": r.kl_first_token}
                for arm, r in report.arms.items()
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
