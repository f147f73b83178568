"""Orthogonalization variants on one model: single-direction, projected, biprojected, Gabliteration.

Selects the refusal direction causally (train / validation split), builds every edited model,
and tabulates (:func:`safetyscope.causal.compare_edits`) held-out harmful refusal, harmless
refusal (95% Wilson intervals), harmless first-token KL and the perplexity of the source's own
harmless answers (95% interval) for:

* ``standard``, ``projected``, ``biprojected`` — the selected direction (whole model);
* ``gabliteration k=K ridge=λ`` — per-layer SVD subspaces (``--ks``, default 1,2,3), each with the
  exact projector (``λ = 0``) and the ridge-regularised one (``--ridge``, default 0.03);
* ``gabliteration adaptive k=2 ridge=λ`` — with the paper's adaptive per-layer scaling too (``--paper-ridge``);
* ``control random k=2`` — a random 2-dimensional subspace orthogonalized everywhere.

Prints one JSON line: ``{"model", "seconds": {...}, "rows": [...]}`` (each row as
:meth:`EditRow.to_dict`, samples dropped), plus ``gabliteration_seconds`` (plan + edit of the
default k=2 model, the budgeted step).

    python bench/gabliteration.py MODEL [--n-train 32] [--n-test 32] [--ks 1,2,3] [--ridge 0.03] [--variants NAME,...]

One copy of the model is loaded; each edited copy is built, evaluated and freed in turn
(``--sequential``, the default on models over 500M parameters) to bound memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import time


def main() -> None:
    """Build the variants, compare them, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--n-val", type=int, default=12)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--ks", default="1,2,3")
    parser.add_argument("--ridge", type=float, default=0.03, help="ridge of the regularised rows (beside 0)")
    parser.add_argument("--paper-ridge", type=float, default=0.1, help="ridge of the adaptive-scaling row")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--variants", default="all", help="comma list of row names to build (default all)")
    parser.add_argument(
        "--judge", default=None, help="judge (default: the organism judge, else the linear judge)"
    )
    parser.add_argument(
        "--layers", default=None, help="candidate layers of the selections, e.g. 8-20 (default all)"
    )
    parser.add_argument(
        "--direction", default=None, help="a saved direction file (`directions select --out`): skip the selection"
    )
    args = parser.parse_args()

    import torch

    from safetyscope import load_model
    from safetyscope.activations import collect, parse_layers
    from safetyscope.causal import compare_edits
    from safetyscope.causal.controls import random_like
    from safetyscope.data.bundled import bundled_path
    from safetyscope.interventions import gabliterate, orthogonalize, plan_gabliteration
    from safetyscope.pipelines.refusal import is_organism, judge_for, refusal_prompts, select

    lm = load_model(args.model)
    files = (None, None) if is_organism(lm) else (bundled_path("harmful"), bundled_path("harmless"))
    p = refusal_prompts(lm, *files, args.n_train, args.n_val, args.n_test, 0)
    sel_kw = {"layers": parse_layers(args.layers, lm.n_layers)} if args.layers else {}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if args.direction:
        from safetyscope.cli._app import load_direction

        d = load_direction(args.direction)
    else:
        _sel, d = select(lm, p, **sel_kw)
    seconds["select"] = time.perf_counter() - t0
    r = d.vector.float()
    mean = collect(lm, p.harmless_train, d.site, "eoi:-1", "mean", progress=False).mean(d.site).float()
    builders = {
        "standard": (1, lambda: orthogonalize(lm, r)),
        "projected": (1, lambda: orthogonalize(lm, r, "projected", harmless_mean=mean)),
        "biprojected": (1, lambda: orthogonalize(lm, r, "biprojected", harmless_mean=mean)),
    }
    for k in [int(x) for x in args.ks.split(",") if x]:
        for lam in sorted({0.0, args.ridge}):
            builders[f"gabliteration k={k} ridge={lam:g}"] = (
                k,
                lambda k=k, lam=lam: gabliterate(
                    lm, plan_gabliteration(lm, p.harmful_train, p.harmless_train, k=k, ridge=lam)
                ),
            )
    builders[f"gabliteration adaptive k=2 ridge={args.paper_ridge:g}"] = (
        2,
        lambda: gabliterate(
            lm,
            plan_gabliteration(
                lm, p.harmful_train, p.harmless_train, k=2, ridge=args.paper_ridge, adaptive=True
            ),
        ),
    )
    ctrl = torch.stack([random_like(r, 1), random_like(r, 2)])
    builders["control random k=2"] = (2, lambda: orthogonalize(lm, ctrl))
    if args.variants != "all":
        keep = set(args.variants.split(","))
        builders = {k: v for k, v in builders.items() if k in keep}
    judge = judge_for(lm, args.judge)
    rows = []
    for name, (k, build) in builders.items():  # one edited copy at a time
        t0 = time.perf_counter()
        edited = build()
        seconds[f"build {name}"] = time.perf_counter() - t0
        table = compare_edits(
            lm,
            {name: edited},
            p.harmful_test,
            p.harmless_test,
            judge,
            n_directions={name: k},
            max_new_tokens=args.max_new_tokens,
        )
        if not rows:
            rows.append(table.row("baseline").to_dict())
        rows.append(table.row(name).to_dict())
        del edited, table
        gc.collect()
    for row in rows:
        row.pop("samples", None)
    print(
        json.dumps(
            {
                "model": args.model,
                "n_test": len(p.harmful_test),
                "direction_layer": d.layer,
                "gabliteration_seconds": seconds.get(f"build gabliteration k=2 ridge={args.ridge:g}"),
                "seconds": {k: round(v, 2) for k, v in seconds.items()},
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
