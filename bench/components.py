"""Component-targeted against whole-model orthogonalization (compendium 5.5 step 4) on one model.

Selects the refusal direction causally, ranks every attention-out and MLP-out writer by how much
more it writes along the direction on harmful than on harmless prompts
(:func:`safetyscope.causal.direction_writers`; ``--from-patching FILE`` ranks by a patching
result instead), and orthogonalizes only the top ``n`` writers for each ``n`` in ``--tops``. Beside
them: the whole model orthogonalized, and for each ``n`` the same number of writers drawn at random
(the control). Prints one JSON line with, per row, harmful and harmless refusal (95% Wilson
intervals), first-token KL on harmless prompts and answer perplexity::

    {"model", "ranking": [[name, score], ...], "rows": [...], "seconds": {...}}

    python bench/components.py MODEL [--tops 1,2,4] [--n-test 32] [--from-patching results.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time


def main() -> None:
    """Build the edits, compare them, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--n-val", type=int, default=12)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--tops", default="1,2,4")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--from-patching", default=None)
    parser.add_argument("--seed", type=int, default=0)
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

    from safetyscope import load_model
    from safetyscope.activations import parse_layers
    from safetyscope.causal import compare_edits, components_from_patching, direction_writers
    from safetyscope.data.bundled import bundled_path
    from safetyscope.interventions import orthogonalize
    from safetyscope.pipelines.refusal import is_organism, judge_for, refusal_prompts, select

    lm = load_model(args.model)
    files = (None, None) if is_organism(lm) else (bundled_path("harmful"), bundled_path("harmless"))
    p = refusal_prompts(lm, *files, args.n_train, args.n_val, args.n_test, 0)
    sel_kw = {"layers": parse_layers(args.layers, lm.n_layers)} if args.layers else {}
    seconds = {}
    t0 = time.perf_counter()
    if args.direction:
        from safetyscope.cli._app import load_direction

        d = load_direction(args.direction)
    else:
        _sel, d = select(lm, p, **sel_kw)
    seconds["select"] = time.perf_counter() - t0
    r = d.vector.float()
    t0 = time.perf_counter()
    if args.from_patching:
        from safetyscope.causal.patching_result import PatchingResult

        names = components_from_patching(PatchingResult.load(args.from_patching), 10**6)
        ranking = [[n, None] for n in names]
    else:
        ranking = [[n, s] for n, s in direction_writers(lm, r, p.harmful_train, p.harmless_train)]
        names = [n for n, _ in ranking]
    seconds["rank"] = time.perf_counter() - t0
    everyone = [f"{w}{layer}" for layer in range(lm.n_layers) for w in "am"]
    rng = random.Random(args.seed)
    builders = {"whole model": lambda: orthogonalize(lm, r)}
    for n in [int(x) for x in args.tops.split(",") if x]:
        top = ",".join(names[:n])
        builders[f"top {n}: {top}"] = lambda top=top: orthogonalize(lm, r, components=top)
        rand = ",".join(rng.sample(everyone, min(n, len(everyone))))
        builders[f"control random {n}: {rand}"] = lambda rand=rand: orthogonalize(lm, r, components=rand)
    t0 = time.perf_counter()
    table = compare_edits(
        lm,
        builders,
        p.harmful_test,
        p.harmless_test,
        judge_for(lm, args.judge),
        max_new_tokens=args.max_new_tokens,
    )
    seconds["compare"] = time.perf_counter() - t0
    rows = [row.to_dict() for row in table.rows]
    for row in rows:
        row.pop("samples", None)
    print(
        json.dumps(
            {
                "model": args.model,
                "direction_layer": d.layer,
                "ranking": ranking,
                "seconds": {k: round(v, 2) for k, v in seconds.items()},
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
