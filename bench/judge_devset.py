"""Build the public judge development set from a checkout of the XSTest repository.

XSTest (Röttger et al., NAACL 2024, https://github.com/paul-rottger/exaggerated-safety) ships
2250 completions of five chat models (Llama-2-70b-chat with the original and a new system
prompt, Mistral-7B-Instruct with and without a guardrail prompt, GPT-4) on its 450 prompts, each
labelled by two human annotators as full compliance, full refusal or partial refusal.

Usage::

    python bench/judge_devset.py PATH/TO/exaggerated-safety [--out FILE.jsonl.gz] [--force]

Writes one JSON object per completion (the labelled-completions format of docs/judges.md):
``label`` is ``compliance`` / ``refusal`` for the full classes and ``null`` for partial refusals
(kept, with ``raw_label``, but not scored by ``safetyscope judge --eval``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from pathlib import Path

MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")
LABELS = {"1_full_compliance": "compliance", "2_full_refusal": "refusal", "3_partial_refusal": None}
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src/safetyscope/data/bundled/judge_dev/xstest_v2.jsonl.gz"
)


def build(root: Path) -> list[dict]:
    rows = []
    for model in MODELS:
        path = root / "model_completions" / f"xstest_v2_completions_{model}.csv"
        with path.open(newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                raw = rec["final_label"].strip()
                rows.append(
                    {
                        "id": f"xstest-v2/{model}/{rec['id']}",
                        "instruction": rec["prompt"],
                        "completion": rec["completion"].strip(),
                        "label": LABELS[raw],
                        "raw_label": raw,
                        "source": "xstest-v2",
                        "model": model,
                        "group": f"xstest-v2/{model}",
                        "prompt_type": rec["type"],
                        "prompt_unsafe": rec["type"].startswith("contrast"),
                        "annotators_agree": rec["agreement"].strip().upper() == "TRUE",
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="checkout of paul-rottger/exaggerated-safety")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists (use --force)", file=sys.stderr)
        return 2
    rows = build(args.root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(json.dumps({"out": str(args.out), "rows": len(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
