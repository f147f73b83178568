"""Harmless-answer perplexity of a safety-trained model against its base: one JSON line.

The reference answers are the *base* model's greedy completions of the held-out harmless prompts
(the audit's test split of the bundled sets, as ``safetyscope train`` uses); both models score
those answers (answer tokens only, :func:`safetyscope.evaluation.answer_perplexity.answer_perplexity`).
A ratio near 1 says the training kept the base's harmless behaviour; ``train`` targets <= 1.15.
Cards written since the card gained ``harmless_perplexity`` already hold this figure; this bench
measures it for any pair, including older runs.

    python bench/harmless_perplexity.py BASE TRAINED [--n 64] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    """Generate the base's answers, score them under both models, print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("base")
    ap.add_argument("trained")
    ap.add_argument("--n", type=int, default=None, help="held-out harmless prompts (default all)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    from safetyscope import load_model
    from safetyscope.data.bundled import bundled_path
    from safetyscope.evaluation.answer_perplexity import answer_perplexity
    from safetyscope.evaluation.generate import generate
    from safetyscope.pipelines.refusal import refusal_prompts

    t0 = time.perf_counter()
    base = load_model(args.base, dtype="float32")
    prompts = refusal_prompts(base, bundled_path("harmful"), bundled_path("harmless")).harmless_test[: args.n]
    answers = generate(base, prompts, max_new_tokens=args.max_new_tokens, progress=False)
    keep = [(p, a) for p, a in zip(prompts, answers, strict=True) if a.strip()]
    ps, ans = [p for p, _ in keep], [a for _, a in keep]
    before = answer_perplexity(base, ps, ans)
    del base
    after = answer_perplexity(load_model(args.trained, dtype="float32"), ps, ans)
    print(
        json.dumps(
            {
                "base": args.base,
                "trained": args.trained,
                "n_answers": len(keep),
                "n_tokens": before.n_tokens,
                "perplexity_base": before.perplexity,
                "perplexity_trained": after.perplexity,
                "ratio": after.perplexity / before.perplexity,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
