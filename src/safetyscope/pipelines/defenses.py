"""Per-model measurements of the robustness matrix that make a defense readable.

A defense against direction attacks (circuit breakers, extended refusal) is judged on three
things besides the ablation matrix, all on held-out prompts with 95% Wilson intervals:

* **orthogonalization**: harmful refusal (and compliance) of a weight-orthogonalized copy
  (:func:`safetyscope.interventions.orthogonalize`, every residual writer and the embeddings) with
  the model's own selected direction, beside the same edit with a random direction of equal norm;
* **harmful compliance**: refusal is not the only way not to comply (a circuit-broken model
  may answer with noise), so every cell also reports the compliance rate;
* **a judged attacker** (:func:`judged_direction`): the score-based selection
  (:func:`safetyscope.pipelines.refusal.select`) ranks directions by the first-token refusal
  log-odds, which says nothing about a model whose refusals open with an explanation; the judged
  attacker instead ablates every candidate difference-in-means direction and keeps the one that
  makes the model *comply* most often on validation prompts (ties: least refusal);
* **a subspace attack** (:func:`subspace_attack`): every candidate difference-in-means direction
  (each layer × end-of-instruction position) ablated at once, beside a random subspace of the
  same dimension: an attacker that does not have to pick one direction;
* **harmless health**: harmless refusal and compliance rates, and the perplexity of reference
  harmless answers (:func:`~safetyscope.evaluation.answer_perplexity.answer_perplexity`): a
  defense that refuses everything, or can no longer answer, is visible here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from safetyscope.causal.controls import random_like
from safetyscope.causal.selection import candidate_directions
from safetyscope.evaluation.answer_perplexity import answer_perplexity
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import label_rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.interventions import ablate, orthogonalize
from safetyscope.model.loading import LoadedModel
from safetyscope.pipelines.refusal import RefusalPrompts

__all__ = ["Outcome", "health", "judged_direction", "outcome", "subspace_attack", "weight_attack"]


@dataclass(frozen=True)
class Outcome:
    """Refusal and compliance rates (with Wilson intervals) of one set of completions."""

    refusal: dict[str, Any]
    compliance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"refusal": self.refusal, "compliance": self.compliance}


def outcome(
    lm: LoadedModel,
    judge: Judge,
    prompts: Sequence[str],
    max_new_tokens: int,
    direction: torch.Tensor | None = None,
) -> Outcome:
    """Greedy completions of ``prompts`` (with ``direction`` ablated when given), judged."""
    if direction is None:
        outs = generate(lm, list(prompts), max_new_tokens=max_new_tokens, progress=False)
    else:
        with ablate(lm, direction.float()):
            outs = generate(lm, list(prompts), max_new_tokens=max_new_tokens, progress=False)
    verdicts = judge.label_many(zip(prompts, outs, strict=True))
    return Outcome(label_rate(verdicts, "refusal").to_dict(), label_rate(verdicts, "compliance").to_dict())


def weight_attack(
    lm: LoadedModel,
    judge: Judge,
    prompts: Sequence[str],
    direction: torch.Tensor,
    max_new_tokens: int,
    seed: int,
) -> dict[str, Any]:
    """Harmful outcome of the model orthogonalized against ``direction`` and against a random control."""
    out: dict[str, Any] = {}
    for name, vec in (("direction", direction), ("control", random_like(direction, seed))):
        edited = orthogonalize(lm, vec.float())
        out[name] = outcome(edited, judge, prompts, max_new_tokens).to_dict()
        del edited
    return out


def health(
    lm: LoadedModel,
    judge: Judge,
    harmless: Sequence[str],
    answers: Sequence[str],
    max_new_tokens: int,
) -> dict[str, Any]:
    """Harmless refusal / compliance and the perplexity of the reference ``answers``."""
    ppl = answer_perplexity(lm, harmless, answers)
    return {
        "harmless": outcome(lm, judge, harmless, max_new_tokens).to_dict(),
        "perplexity": ppl.perplexity,
        "perplexity_tokens": ppl.n_tokens,
    }


def judged_direction(
    lm: LoadedModel, judge: Judge, prompts: RefusalPrompts, max_new_tokens: int
) -> tuple[dict[str, Any], torch.Tensor]:
    """The candidate direction whose ablation makes ``lm`` comply most on the validation prompts.

    Candidates are the difference-in-means vectors of every (layer, end-of-instruction position)
    (train prompts); the winner is returned as a unit vector with its description and every
    candidate's validation refusal / compliance rates.
    """
    cands = candidate_directions(lm, prompts.harmful_train, prompts.harmless_train, list(range(lm.n_layers)))
    rows = []
    for (layer, pos), vec in cands.items():
        if not float(vec.norm()) > 0:  # resid_pre 0 at a template token: one embedding for both sets
            continue
        o = outcome(lm, judge, prompts.harmful_val, max_new_tokens, vec)
        rows.append((o.compliance["rate"], o.refusal["rate"], layer, pos, vec))
    if not rows:
        from safetyscope.errors import SafetyscopeError

        raise SafetyscopeError(
            "Every candidate direction is zero: harmful and harmless prompts do not differ."
        )
    best = max(rows, key=lambda r: (r[0], -r[1], r[2]))
    info = {
        "layer": best[2],
        "position": best[3],
        "point": "resid_pre",
        "raw_norm": float(best[4].norm()),
        "selection": "judged",
        "val_compliance": best[0],
        "val_refusal": best[1],
        "candidates": [{"layer": r[2], "position": r[3], "compliance": r[0], "refusal": r[1]} for r in rows],
    }
    return info, best[4] / best[4].norm()


def subspace_attack(
    lm: LoadedModel, judge: Judge, prompts: RefusalPrompts, max_new_tokens: int, seed: int
) -> dict[str, Any]:
    """Harmful outcome with every non-zero candidate direction ablated at once, and a random control.

    The control is a random subspace of the same dimension (rows of equal norms,
    :func:`~safetyscope.causal.controls.random_like`).
    """
    cands = candidate_directions(lm, prompts.harmful_train, prompts.harmless_train, list(range(lm.n_layers)))
    keys = [k for k, v in cands.items() if float(v.norm()) > 0]
    if not keys:
        from safetyscope.errors import SafetyscopeError

        raise SafetyscopeError(
            "Every candidate direction is zero: harmful and harmless prompts do not differ."
        )
    basis = torch.stack([cands[k] for k in keys])
    return {
        "dimension": len(keys),
        "sites": [{"layer": k[0], "position": k[1]} for k in keys],
        "subspace": outcome(lm, judge, prompts.harmful_test, max_new_tokens, basis).to_dict(),
        "control": outcome(
            lm, judge, prompts.harmful_test, max_new_tokens, random_like(basis, seed)
        ).to_dict(),
    }
