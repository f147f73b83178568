"""Choose the refusal direction causally (Arditi et al.): candidates over layers × post-instruction positions.

For each layer ``l`` and end-of-instruction position ``i`` the candidate is the difference in
means ``r = μ_harmful − μ_harmless`` of ``resid_pre`` activations. Each is scored on
validation prompts with the generation-free refusal log-odds:

* **bypass** — mean refusal score on harmful prompts with ``r̂`` ablated everywhere (lower is better);
* **induce** — mean refusal score on harmless prompts with ``r`` added at layer ``l`` (must be > 0);
* **kl** — first-token KL on harmless prompts between the clean and ablated model (≤ ``max_kl``).

Candidates in the last ``prune_last`` fraction of layers are skipped (they act directly on the
logits rather than on a representation). The best is the lowest bypass among those passing
the filters; the full ranked table is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

from safetyscope import __version__
from safetyscope.activations import Positions, Site, collect
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.logits import kl_rows
from safetyscope.evaluation.refusal_score import (
    last_token_logits,
    refusal_scores_from_logits,
    refusal_token_ids,
)
from safetyscope.interventions.hooks import ablate, add
from safetyscope.model.loading import LoadedModel


@dataclass
class Candidate:
    """One (layer, end-of-instruction position) candidate and its causal scores."""

    layer: int
    position: int  # index into the end-of-instruction positions (negative: from the end)
    norm: float
    bypass: float
    induce: float
    kl: float
    eligible: bool
    reason: str = ""


@dataclass
class Selection:
    """Ranked candidates, the chosen direction and the baselines it is compared to."""

    candidates: list[Candidate]
    best: Candidate
    direction: Tensor  # raw difference in means of the best candidate, [d]
    baseline_harmful: float
    baseline_harmless: float
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> Tensor:
        """The chosen direction, unit norm."""
        return self.direction / self.direction.norm()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (the vector itself is saved separately)."""
        return {
            "best": asdict(self.best),
            "baseline_refusal_score": {"harmful": self.baseline_harmful, "harmless": self.baseline_harmless},
            "candidates": [asdict(c) for c in self.candidates],
            "provenance": self.provenance,
        }


def candidate_directions(lm: LoadedModel, harmful: Sequence[str], harmless: Sequence[str],
                         layers: Sequence[int]) -> dict[tuple[int, int], Tensor]:
    """Difference-in-means vectors for every (layer, end-of-instruction position) pair."""
    sites = [Site(layer) for layer in layers]
    pos = Positions("eoi")
    a = collect(lm, harmful, sites, pos, "none", progress=False)
    b = collect(lm, harmless, sites, pos, "none", progress=False)
    out = {}
    for site in sites:
        diff = a.per_prompt(site).double().mean(0) - b.per_prompt(site).double().mean(0)  # [k, d]
        k = diff.shape[0]
        for i in range(k):
            out[(site.layer, i - k)] = diff[i].float()
    return out


def select_direction(
    lm: LoadedModel,
    harmful_train: Sequence[str],
    harmless_train: Sequence[str],
    harmful_val: Sequence[str],
    harmless_val: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    max_kl: float = 0.1,
    prune_last: float = 0.2,
    refusal_tokens: Sequence[int] | None = None,
) -> Selection:
    """Score every candidate and return the ranked :class:`Selection` (see module docstring)."""
    for name, prompts in (("harmful_train", harmful_train), ("harmless_train", harmless_train),
                          ("harmful_val", harmful_val), ("harmless_val", harmless_val)):
        if len(prompts) < 2:
            raise SafetyscopeError(f"{name} needs at least 2 prompts, got {len(prompts)}.")
    chosen = list(range(lm.n_layers)) if layers is None else list(layers)
    tokens = list(refusal_tokens) if refusal_tokens is not None else refusal_token_ids(lm.tokenizer)
    cutoff = lm.n_layers - int(lm.n_layers * prune_last)
    base_harmless_logits = last_token_logits(lm, harmless_val)
    base_harmful = float(refusal_scores_from_logits(last_token_logits(lm, harmful_val), tokens).mean())
    base_harmless = float(refusal_scores_from_logits(base_harmless_logits, tokens).mean())
    candidates = []
    vectors = candidate_directions(lm, harmful_train, harmless_train, chosen)
    largest = max(float(v.norm()) for v in vectors.values())
    for (layer, position), vec in vectors.items():
        if float(vec.norm()) <= 1e-6 * largest:  # e.g. template tokens at layer 0: identical embeddings
            candidates.append(Candidate(layer, position, float(vec.norm()), float("nan"), float("nan"),
                                        float("nan"), False, "no difference between the sets"))
            continue
        with ablate(lm, vec):
            bypass = float(refusal_scores_from_logits(last_token_logits(lm, harmful_val), tokens).mean())
            kl = float(kl_rows(base_harmless_logits, last_token_logits(lm, harmless_val)).mean())
        with add(lm, vec, layers=[layer]):
            induce = float(refusal_scores_from_logits(last_token_logits(lm, harmless_val), tokens).mean())
        reasons = []
        if layer >= cutoff:
            reasons.append(f"layer in the last {prune_last:.0%}")
        if kl > max_kl:
            reasons.append(f"KL {kl:.3f} > {max_kl}")
        if induce <= 0:
            reasons.append("does not induce refusal")
        candidates.append(Candidate(layer, position, float(vec.norm()), bypass, induce, kl, not reasons,
                                    "; ".join(reasons)))
    candidates.sort(key=lambda c: (not c.eligible, c.bypass if c.bypass == c.bypass else float("inf")))
    if not candidates[0].eligible:
        raise SafetyscopeError(
            "No candidate direction passes the filters (KL, induction, layer pruning); "
            f"best was layer {candidates[0].layer} ({candidates[0].reason}). Try more prompts or a larger max_kl."
        )
    best = candidates[0]
    return Selection(
        candidates, best, vectors[(best.layer, best.position)], base_harmful, base_harmless,
        provenance={"model": lm.spec, "model_fingerprint": lm.fingerprint(), "method": "diff_in_means",
                    "n_train": [len(harmful_train), len(harmless_train)], "n_val": [len(harmful_val), len(harmless_val)],
                    "max_kl": max_kl, "prune_last": prune_last, "refusal_tokens": tokens,
                    "safetyscope_version": __version__},
    )
