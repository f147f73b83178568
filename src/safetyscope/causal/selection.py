"""Choose the refusal direction causally (Arditi et al.): candidates over layers × post-instruction positions.

For each layer ``l`` and end-of-instruction position ``i`` the candidate is the difference in
means ``r = μ_harmful − μ_harmless`` of ``resid_pre`` activations (its :class:`Site` is
``Site(l, "resid_pre")``, where it is also written). Each is scored on validation prompts with
the generation-free refusal log-odds:

* **bypass** — mean refusal score on harmful prompts with ``r̂`` ablated everywhere (lower is better);
* **induce** — mean refusal score on harmless prompts with ``r`` added at its site (must be > 0);
* **kl** — first-token KL on harmless prompts between the clean and ablated model (≤ ``max_kl``).

Candidates in the last ``prune_last`` fraction of layers are skipped (they act directly on the
logits rather than on a representation). The best is the lowest bypass among those passing
the filters; the full ranked table is kept.

``mode="fast"`` (default) ranks every candidate by a first-order estimate of its bypass and
induce scores (:mod:`safetyscope.causal.estimate`: one forward + backward per prompt set for
all candidates) and scores only the ``top_k`` best exactly, widening by ``top_k`` more in estimate
order (at most ``widen`` times) while none of those scored passes the filters (the first-order estimate can mis-rank, as it
did on the deep organism); ``mode="exhaustive"`` scores
every candidate exactly (three forward passes each). ``bench/selection.py`` compares the two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations import Positions, Site, collect
from safetyscope.causal.estimate import ablation_effects, addition_effects
from safetyscope.causal.selection_exact import PrefixInduce, ablated_logits, exact_scores
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.refusal_score import (
    last_token_logits,
    refusal_scores_from_logits,
    refusal_token_ids,
)
from safetyscope.model.loading import LoadedModel

SELECTION_MODES = ("fast", "exhaustive")
_NAN = float("nan")
#: Candidates whose ablated validation passes share one forward pass (row blocks of one batch).
ABLATE_TOGETHER = 5


class SelectionError(SafetyscopeError):
    """No candidate direction passes the filters, or the selection input is unusable."""


@dataclass
class Candidate:
    """One (layer, end-of-instruction position) candidate and its causal scores.

    ``bypass``, ``induce`` and ``kl`` are exact (NaN when the candidate was only estimated);
    ``est_bypass`` and ``est_induce`` are the first-order estimates (NaN in exhaustive mode).
    """

    layer: int
    position: int  # index into the end-of-instruction positions (negative: from the end)
    norm: float
    bypass: float
    induce: float
    kl: float
    eligible: bool
    reason: str = ""
    est_bypass: float = _NAN
    est_induce: float = _NAN
    exact: bool = True
    point: str = "resid_pre"

    @property
    def site(self) -> Site:
        """Where the candidate was read and is written."""
        return Site(self.layer, self.point)  # type: ignore[arg-type]

    @property
    def key(self) -> tuple[int, int]:
        """``(layer, position)``."""
        return (self.layer, self.position)


@dataclass
class Selection:
    """Ranked candidates, the chosen direction and the baselines it is compared to."""

    candidates: list[Candidate]
    best: Candidate
    direction: Tensor  # raw difference in means of the best candidate, [d]
    baseline_harmful: float
    baseline_harmless: float
    provenance: dict[str, Any] = field(default_factory=dict)
    mode: str = "exhaustive"
    n_exact: int = 0
    seconds: float = 0.0

    @property
    def unit(self) -> Tensor:
        """The chosen direction, unit norm."""
        return self.direction / self.direction.norm()

    @property
    def site(self) -> Site:
        """Where the chosen direction was read (and is written)."""
        return self.best.site

    def top(self, k: int) -> list[tuple[int, int]]:
        """``(layer, position)`` of the first ``k`` ranked candidates."""
        return [c.key for c in self.candidates[:k]]

    def to_dict(self, with_vector: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary (NaN scores as ``None``; the vector only with ``with_vector``)."""
        out = {
            "best": _clean(asdict(self.best)) | {"site": self.best.site.key},
            "baseline_refusal_score": {"harmful": self.baseline_harmful, "harmless": self.baseline_harmless},
            "mode": self.mode, "n_candidates": len(self.candidates), "n_exact": self.n_exact,
            "seconds": self.seconds,
            "candidates": [_clean(asdict(c)) for c in self.candidates],
            "provenance": self.provenance,
        }
        if with_vector:
            out["direction"] = self.direction.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], direction: Tensor | None = None) -> Selection:
        """Inverse of :meth:`to_dict` (pass ``direction`` when the dict was written without it)."""
        cands = [_candidate(c) for c in data["candidates"]]
        best = _candidate(data["best"])
        vec = direction if direction is not None else torch.tensor(data["direction"], dtype=torch.float32)
        base = data["baseline_refusal_score"]
        return cls(cands, best, vec, base["harmful"], base["harmless"], dict(data.get("provenance", {})),
                   data.get("mode", "exhaustive"), int(data.get("n_exact", len(cands))), float(data.get("seconds", 0.0)))


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _candidate(d: dict[str, Any]) -> Candidate:
    known = {f for f in Candidate.__dataclass_fields__}
    return Candidate(**{k: (_NAN if v is None and k in ("bypass", "induce", "kl", "est_bypass", "est_induce")
                            else v) for k, v in d.items() if k in known})


def candidate_directions(lm: LoadedModel, harmful: Sequence[str], harmless: Sequence[str],
                         layers: Sequence[int]) -> dict[tuple[int, int], Tensor]:
    """Difference-in-means vectors of ``resid_pre`` for every (layer, end-of-instruction position) pair."""
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


def _judge(c: Candidate, cutoff: int, prune_last: float, max_kl: float) -> Candidate:
    reasons = []
    if c.layer >= cutoff:
        reasons.append(f"layer in the last {prune_last:.0%}")
    if c.kl > max_kl:
        reasons.append(f"KL {c.kl:.3f} > {max_kl}")
    if not c.induce > 0:
        reasons.append("does not induce refusal")
    c.eligible, c.reason = not reasons, "; ".join(reasons)
    return c


def _finite(x: float) -> float:
    return x if x == x else float("inf")


def rank_candidates(
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
    mode: str = "fast",
    top_k: int = 5,
    widen: int = 3,
) -> Selection:
    """Score and rank every candidate (see module docstring); the best may fail the filters.

    In fast mode, while no exactly scored candidate passes the filters, up to ``widen`` further
    rounds of ``top_k`` candidates (in estimate order) are scored exactly; not when the model does
    not refuse its harmful validation prompts to begin with (mean refusal log-odds <= 0).
    """
    start = time.perf_counter()
    for name, prompts in (("harmful_train", harmful_train), ("harmless_train", harmless_train),
                          ("harmful_val", harmful_val), ("harmless_val", harmless_val)):
        if len(prompts) < 2:
            raise SelectionError(f"{name} needs at least 2 prompts, got {len(prompts)}.")
    if mode not in SELECTION_MODES:
        raise SelectionError(f"Unknown selection mode {mode!r}; use one of {SELECTION_MODES}.")
    if top_k < 1 or widen < 0:
        raise SelectionError(f"top_k must be >= 1 and widen >= 0, got {top_k} and {widen}.")
    chosen = list(range(lm.n_layers)) if layers is None else list(layers)
    bad = [x for x in chosen if not 0 <= x < lm.n_layers]
    if bad:
        raise SelectionError(f"Layers {bad} out of range for a model with {lm.n_layers} layers.")
    tokens = list(refusal_tokens) if refusal_tokens is not None else refusal_token_ids(lm.tokenizer)
    cutoff = lm.n_layers - int(lm.n_layers * prune_last)
    base_harmless_logits = last_token_logits(lm, harmless_val)
    base_harmful = float(refusal_scores_from_logits(last_token_logits(lm, harmful_val), tokens).mean())
    base_harmless = float(refusal_scores_from_logits(base_harmless_logits, tokens).mean())
    vectors = candidate_directions(lm, harmful_train, harmless_train, chosen)
    largest = max(float(v.norm()) for v in vectors.values())
    live = [key for key, v in vectors.items() if float(v.norm()) > 1e-6 * largest]
    dead = [Candidate(k[0], k[1], float(vectors[k].norm()), _NAN, _NAN, _NAN, False,
                      "no difference between the sets", exact=False) for k in vectors if k not in live]
    # e.g. template tokens at layer 0: identical embeddings in both sets

    if mode == "fast" and len(live) > top_k:
        stack = torch.stack([vectors[k] for k in live])
        est_b = (base_harmful + ablation_effects(lm, harmful_val, stack, tokens)).tolist()
        by_layer: dict[int, list[int]] = {}
        for i, (layer, _pos) in enumerate(live):
            by_layer.setdefault(layer, []).append(i)
        effects = addition_effects(lm, harmless_val, {layer: stack[idx] for layer, idx in by_layer.items()}, tokens)
        est_i = [0.0] * len(live)
        for layer, idx in by_layer.items():
            for j, i in enumerate(idx):
                est_i[i] = base_harmless + float(effects[layer][j])
        order = sorted(range(len(live)), key=lambda i: (live[i][0] >= cutoff or not est_i[i] > 0, _finite(est_b[i])))
        queue = [live[i] for i in order]
        estimates = {live[i]: (est_b[i], est_i[i], rank) for rank, i in enumerate(order)}
        step = top_k
    else:
        queue, estimates, step = list(live), {}, len(live)

    # Score exactly in rounds of `step` candidates, in first-order order: when no candidate of a round
    # passes the filters (the estimate can mis-rank on some models), widen to the next round.
    results: dict[tuple[int, int], Candidate] = {}
    rounds = 0
    # A model that does not refuse its harmful validation prompts (mean refusal log-odds <= 0) has no
    # refusal for a direction to mediate: no round can pass the filters, so widening only spends passes.
    widen_rounds = widen if base_harmful > 0 else 0
    while len(results) < len(queue) and rounds <= widen_rounds:
        rounds += 1
        batch = queue[len(results):len(results) + step]
        induce = PrefixInduce(lm, harmless_val, sorted({k[0] for k in batch}), tokens)
        ablated: list[Tensor] = []
        for at in range(0, len(batch), ABLATE_TOGETHER):  # both validation sets, candidates side by side
            chunk = [vectors[key] for key in batch[at:at + ABLATE_TOGETHER]]
            ablated.extend(ablated_logits(lm, chunk, [*harmful_val, *harmless_val]))
        for key, logits in zip(batch, ablated, strict=True):
            eb, ei, _rank = estimates.get(key, (_NAN, _NAN, -1))
            vec = vectors[key]
            bypass, ind, kl = exact_scores(logits, vec, key[0], len(harmful_val), base_harmless_logits, tokens,
                                           induce)
            results[key] = _judge(Candidate(key[0], key[1], float(vec.norm()), bypass, ind, kl, False, "", eb, ei),
                                  cutoff, prune_last, max_kl)
        if any(c.eligible for c in results.values()):
            break

    scored = []
    for key in live:
        eb, ei, rank = estimates.get(key, (_NAN, _NAN, -1))
        c = results.get(key) or Candidate(key[0], key[1], float(vectors[key].norm()), _NAN, _NAN, _NAN, False,
                                          f"not scored exactly (first-order rank {rank + 1})", eb, ei, exact=False)
        scored.append((rank, c))
    exact = sorted((c for _, c in scored if c.exact), key=lambda c: (not c.eligible, _finite(c.bypass)))
    rest = [c for _, c in sorted(((r, c) for r, c in scored if not c.exact), key=lambda rc: rc[0])]
    candidates = exact + rest + dead
    best = candidates[0]
    return Selection(
        candidates, best, vectors[best.key], base_harmful, base_harmless,
        provenance={"model": lm.spec, "model_fingerprint": lm.fingerprint(), "method": "diff_in_means",
                    "site_point": "resid_pre", "positions": "eoi",
                    "n_train": [len(harmful_train), len(harmless_train)], "n_val": [len(harmful_val), len(harmless_val)],
                    "max_kl": max_kl, "prune_last": prune_last, "refusal_tokens": tokens, "mode": mode,
                    "top_k": top_k if mode == "fast" else None,
                    "widen": widen if mode == "fast" else None, "safetyscope_version": __version__},
        mode=mode, n_exact=len(exact), seconds=time.perf_counter() - start,
    )


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
    mode: str = "fast",
    top_k: int = 5,
    widen: int = 3,
) -> Selection:
    """:func:`rank_candidates`, requiring the best to pass the filters.

    Raises:
        SelectionError: no candidate passes the KL, induction and layer filters.
    """
    sel = rank_candidates(lm, harmful_train, harmless_train, harmful_val, harmless_val, layers=layers,
                          max_kl=max_kl, prune_last=prune_last, refusal_tokens=refusal_tokens, mode=mode, top_k=top_k,
                          widen=widen)
    if not sel.best.eligible:
        raise SelectionError(
            "No candidate direction passes the filters (KL, induction, layer pruning); "
            f"best was layer {sel.best.layer} ({sel.best.reason}). Try more prompts or a larger max_kl."
        )
    return sel
