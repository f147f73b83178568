"""``safetyscope robustness-front``: the refusal-vs-KL Pareto front of orthogonalization, checked by generation.

Steps: prompt splits (train / validation / test); candidate directions per layer from the train
split (difference in means at the last end-of-instruction token, :func:`candidate_directions`);
an Optuna search scored on the validation split (:mod:`safetyscope.causal.front`); then the
front's points (up to ``check``, spread along the KL axis) are generated on the test split and
judged, beside the un-edited baseline and a control (the lowest-refusal point's kernel with a
random direction of equal norm). It is a measurement: no model is written.

Output folder: ``results.json`` (the table, every trial's parameters, the checks with Wilson
intervals, provenance), ``front.png`` and the resumable study ``study.journal``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from safetyscope import __version__
from safetyscope.causal.arms import Arm, run_arms
from safetyscope.causal.controls import random_like
from safetyscope.causal.front import (
    FrontObjective,
    interpolated_direction,
    open_study,
    run_study,
)
from safetyscope.causal.front_result import RESULTS_FILE, FrontCheck, RobustnessFront, spread
from safetyscope.causal.selection import candidate_directions
from safetyscope.evaluation.refusal_score import refusal_token_ids
from safetyscope.evaluation.verdict import Judge
from safetyscope.interventions.kernel import kernel_ablate
from safetyscope.model.loading import LoadedModel
from safetyscope.pipelines.refusal import RefusalPrompts, judge_for, refusal_prompts

STUDY_FILE = "study.journal"
FIGURE_FILE = "front.png"


def robustness_front(
    lm: LoadedModel,
    out: Path,
    *,
    harmful: Path | None = None,
    harmless: Path | None = None,
    n_train: int = 32,
    n_val: int = 16,
    n_test: int = 32,
    seed: int = 0,
    judge: str | None = None,
    **kwargs: Any,
) -> RobustnessFront:
    """Search, check and write the front to ``out`` (see the module docstring); resumes ``out/study.journal``.

    ``kwargs`` go to :func:`measure_front` (``trials``, ``check``, ``sampler``, ``selected``...).
    """
    from safetyscope.outputs import atomic_file

    prompts = refusal_prompts(lm, harmful, harmless, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    result = measure_front(lm, prompts, judge_for(lm, judge), out / STUDY_FILE, seed=seed, **kwargs)
    with atomic_file(out / RESULTS_FILE) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=_json_default))
    draw_front(result, out / FIGURE_FILE)
    return result


def measure_front(
    lm: LoadedModel,
    prompts: RefusalPrompts,
    judge: Judge,
    study_path: Path,
    *,
    trials: int = 30,
    check: int = 5,
    sampler: str = "tpe",
    objective: str = "share",
    batch: int = 1,
    seed: int = 0,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    progress: bool = True,
    selected: torch.Tensor | None = None,
) -> RobustnessFront:
    """Candidate directions (train split), the search (validation split), the generation check (test split).

    ``selected``: a single selected direction (e.g. the audit's) whose full directional ablation is
    checked beside the front, for "the front's best refusal at KL ≤ 0.1 against the single direction's".
    """
    t0 = time.perf_counter()
    layers = list(range(lm.n_layers))
    cands = candidate_directions(lm, prompts.harmful_train, prompts.harmless_train, layers)
    candidates = torch.stack([cands[(layer, -1)] for layer in layers])
    from safetyscope.transfer.pairs import prompt_hash

    setup = {
        "model_fingerprint": lm.fingerprint(),
        "n_layers": lm.n_layers,
        "objective": objective,
        "train_hash": prompt_hash(prompts.harmful_train + prompts.harmless_train),
        "val_hash": prompt_hash(prompts.harmful_val + prompts.harmless_val),
        "seed": seed,
    }
    study = open_study(study_path, "robustness-front", sampler, seed, setup, n_startup=max(4, trials // 3))
    scorer = FrontObjective(
        lm,
        candidates,
        list(prompts.harmful_val),
        list(prompts.harmless_val),
        refusal_token_ids(lm.tokenizer),
        objective,
        batch_size,
    )
    scores = run_study(study, scorer, trials, batch=batch, progress=progress)
    t_search = time.perf_counter() - t0
    front = sorted((t for t in scores if t.on_front), key=lambda t: (t.kl, t.refusal))
    chosen = spread(front, check)
    arms = [Arm("baseline", lm)]
    for t in chosen:
        arms.append(Arm(f"trial {t.number}", lm, scorer.context(t.params)))
    lowest = min(front, key=lambda t: (t.refusal, t.kl)) if front else None
    if lowest is not None:
        v = interpolated_direction(candidates, lowest.params.direction_index)
        rand = random_like(v, seed)
        n = lm.n_layers
        arms.append(
            Arm(
                "control",
                lm,
                lambda: kernel_ablate(lm, rand, lowest.params.attn.weights(n), lowest.params.mlp.weights(n)),
            )
        )
    if selected is not None:
        from safetyscope.interventions.hooks import ablate

        sel = selected.float()
        arms.append(Arm("selected direction", lm, lambda: ablate(lm, sel)))
    report = run_arms(
        lm,
        arms,
        {"harmful": prompts.harmful_test, "harmless": prompts.harmless_test},
        judge,
        intervention="kernel_ablate",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    checks = [FrontCheck("baseline", None, None, None, None, report.arms["baseline"])]
    for t in chosen:
        checks.append(
            FrontCheck(
                f"trial {t.number}", t.number, t.params, t.refusal, t.kl, report.arms[f"trial {t.number}"]
            )
        )
    if lowest is not None:
        checks.append(FrontCheck("control", None, lowest.params, None, None, report.arms["control"]))
    if selected is not None:
        checks.append(
            FrontCheck("selected direction", None, None, None, None, report.arms["selected direction"])
        )
    result = RobustnessFront(
        scores,
        checks,
        {
            "model": lm.spec,
            "model_fingerprint": lm.fingerprint(),
            "prompts": prompts.source,
            "sampler": sampler,
            "objective": objective,
            "n_trials": len(scores),
            "n_val": [len(prompts.harmful_val), len(prompts.harmless_val)],
            "n_test": [len(prompts.harmful_test), len(prompts.harmless_test)],
            "judge": report.provenance.get("judge"),
            "max_new_tokens": max_new_tokens,
            "seed": seed,
            "setup": setup,
            "search_s": round(t_search, 1),
            "total_s": round(time.perf_counter() - t0, 1),
            "safetyscope_version": __version__,
            "control": f"random direction of equal norm with trial {lowest.number}'s kernels"
            if lowest
            else None,
        },
    )
    return result


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)


def draw_front(result: RobustnessFront, path: Path) -> Path:
    """Scatter of every trial (search KL vs refusal), the front, and the judged refusal (95% CI) of the checks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4))
    ax, bx = fig.subplots(1, 2)
    ax.scatter(
        [t.kl for t in result.trials], [t.refusal for t in result.trials], s=12, c="#aaaaaa", label="trial"
    )
    front = result.front
    ax.plot([t.kl for t in front], [t.refusal for t in front], "o-", c="#1f5fa8", label="Pareto front")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("harmless first-token KL (nats, validation)")
    ax.set_ylabel(f"harmful refusal objective ({result.provenance.get('objective')})")
    ax.set_title("search (no generation)")
    ax.legend(fontsize=8)
    for c in result.checks:
        r = c.result.refusal["harmful"]
        kl = c.result.kl_first_token or 0.0
        color = {"baseline": "#222222", "control": "#808080", "selected direction": "#2e8b57"}.get(
            c.name, "#c0392b"
        )
        rate = r.rate or 0.0
        bx.errorbar([kl], [rate], yerr=[[rate - r.ci_low], [r.ci_high - rate]], fmt="o", c=color, capsize=3)
        bx.annotate(c.name, (kl, rate), fontsize=7, xytext=(3, 3), textcoords="offset points")
    bx.set_xscale("symlog", linthresh=1e-3)
    bx.set_xlabel("harmless first-token KL (nats, test)")
    bx.set_ylabel("judged refusal rate (harmful, test; 95% Wilson CI)")
    bx.set_ylim(-0.05, 1.05)
    bx.set_title("front checked by generation")
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(str(path))
    return path
