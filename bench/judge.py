"""Judge benchmark: throughput of the offline judges and every judge's figures on the dev set.

Usage::

    python bench/judge.py [--dev FILE.jsonl.gz] [--judges keyword,rules,default] [--llm MODEL --n 40 --rubric harmbench]

Prints one JSON line: per judge, completions per second (wall clock, and per CPU-second of this
process, which a busy machine distorts less) and
agreement / kappa (95% Wilson interval on agreement) against the human labels of the public
development set (docs/judges.md), overall and per source model; throughput ratios are against
the keyword baseline measured in the same run. With ``--llm`` an LLM judge (a local causal LM,
e.g. ``qwen2.5-coder-1.5b-instruct``) is also scored on a seeded slice of ``--n`` labelled rows,
beside the offline judges on the same slice.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from safetyscope.evaluation.judge_eval import evaluate_labels
from safetyscope.evaluation.judge_io import read_completions
from safetyscope.evaluation.judges import get_judge

DEV = Path(__file__).resolve().parents[1] / "src/safetyscope/data/bundled/judge_dev/xstest_v2.jsonl.gz"


def _score(judge, rows):
    t, c = time.perf_counter(), time.process_time()
    verdicts = judge.label_many((r["instruction"], r["completion"]) for r in rows)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    pred = [v.label for v in verdicts]
    ev = evaluate_labels(pred, [r["label"] for r in rows])
    per = {}
    for m in sorted({r["model"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["model"] == m]
        e = evaluate_labels([pred[i] for i in idx], [rows[i]["label"] for i in idx])
        per[m] = {"agreement": round(e.agreement, 4), "kappa": round(e.kappa, 4)}
    return {
        "n": ev.n,
        "per_s": round(len(rows) / dt, 1),
        "per_cpu_s": round(len(rows) / max(cpu, 1e-9), 1),
        "agreement": round(ev.agreement, 4),
        "agreement_ci": [round(x, 4) for x in ev.agreement_ci],
        "kappa": round(ev.kappa, 4),
        "per_model": per,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--judges", default="keyword,rules,default")
    ap.add_argument("--llm", default=None, help="local causal LM for an LLM judge on a slice")
    ap.add_argument("--rubric", default="harmbench")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = [r for r in read_completions(args.dev) if r.get("label") in ("compliance", "refusal")]
    out = {"dev_set": args.dev.name, "rows": len(rows), "judges": {}}
    for name in args.judges.split(","):
        out["judges"][name] = _score(get_judge(name), rows)
    base = out["judges"].get("keyword", {}).get("per_s")
    if base:
        for fig in out["judges"].values():
            fig["speed_vs_keyword"] = round(fig["per_s"] / base, 4)
    if args.llm:
        rng = random.Random(args.seed)
        sl = rng.sample(rows, min(args.n, len(rows)))
        out["slice"] = {"n": len(sl), "seed": args.seed, "llm": args.llm, "rubric": args.rubric, "judges": {}}
        for name in [*args.judges.split(","), f"llm:{args.llm}"]:
            judge = get_judge(name, rubric=args.rubric if name.startswith("llm:") else None)
            out["slice"]["judges"][name] = _score(judge, sl)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
