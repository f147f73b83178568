"""COSMIC (Siu et al., ACL 2025 Findings): choose the refusal direction without reading outputs.

Candidates are the same as in :mod:`safetyscope.causal.selection`: for every layer ``l`` and
end-of-instruction (eoi) position ``i`` the difference in means ``r = μ_harmful − μ_harmless`` of
``resid_pre``. Instead of a refusal-token score, each candidate is scored in activation space:

* ``L_low`` — the ``⌈low_fraction · n_layers⌉`` layers (of all the model's layers, whichever
  layers the candidates come from) where the two classes separate best, i.e.
  where ``cos(H_l, B_l)`` is lowest, ``H_l`` / ``B_l`` being the mean harmful / harmless
  ``resid_pre`` at the eoi positions of layer ``l``, concatenated over positions;
* ``rep(X)`` — the mean activations of a prompt set, concatenated over ``L_low`` and the eoi positions;
* **S_comply** ``= cos(rep(harmful with r̂ ablated everywhere), rep(harmless))`` — ablating the
  direction makes harmful prompts look harmless inside the model;
* **S_refuse** ``= cos(rep(harmless with r added at its site), rep(harmful))`` — adding it makes
  harmless prompts look harmful;
* **score** ``= S_comply + S_refuse`` (higher is better, at most 2).

As in the paper, candidates in the last ``prune_last`` fraction of layers are skipped and the
first-token KL on harmless prompts under ablation must stay ``≤ max_kl`` (a logit-level guard
that needs no refusal template and no judge). ``mode="exhaustive"`` scores every candidate with
two forward passes each; ``mode="fast"`` (default) first ranks all candidates by a pass-free
proxy computed from the clean means (ablation removes ``r̂`` from the harmful means of ``L_low``;
addition adds ``r`` to the harmless means of the ``L_low`` layers at or after ``l``) and scores
exactly only the ``top_k`` best, widening by ``top_k`` (at most ``widen`` times) while none of
those passes the filters.
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
from safetyscope.causal.selection import SelectionError
from safetyscope.evaluation.logits import kl_rows
from safetyscope.evaluation.refusal_score import last_token_logits
from safetyscope.interventions.hooks import ablate, add
from safetyscope.model.loading import LoadedModel

COSMIC_MODES = ("fast", "exhaustive")
_NAN = float("nan")


@dataclass
class CosmicCandidate:
    """One (layer, eoi position) candidate: exact scores (NaN when only the proxy was computed)."""

    layer: int
    position: int
    norm: float
    s_comply: float = _NAN
    s_refuse: float = _NAN
    score: float = _NAN
    kl: float = _NAN
    proxy: float = _NAN
    eligible: bool = False
    reason: str = ""

    @property
    def exact(self) -> bool:
        """Whether the exact (forward-pass) score was computed."""
        return self.score == self.score

    @property
    def site(self) -> Site:
        """Where the candidate was read and is written."""
        return Site(self.layer)

    @property
    def key(self) -> tuple[int, int]:
        """``(layer, position)``."""
        return (self.layer, self.position)


@dataclass
class CosmicSelection:
    """Ranked COSMIC candidates, the chosen direction and the layers its scores were read at."""

    candidates: list[CosmicCandidate]
    best: CosmicCandidate
    direction: Tensor  # raw difference in means of the best candidate, [d]
    low_layers: list[int]
    layer_cosine: list[float]  # cos(H_l, B_l) of every layer of the model (index = layer)
    provenance: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def unit(self) -> Tensor:
        """The chosen direction, unit norm."""
        return self.direction / self.direction.norm()

    def to_dict(self, with_vector: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary (NaN as ``None``)."""

        def clean(c: CosmicCandidate) -> dict[str, Any]:
            return {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(c).items()
            }

        out = {
            "method": "cosmic",
            "best": clean(self.best) | {"site": self.best.site.key},
            "low_layers": self.low_layers,
            "layer_cosine": self.layer_cosine,
            "seconds": self.seconds,
            "n_candidates": len(self.candidates),
            "n_exact": sum(c.exact for c in self.candidates),
            "candidates": [clean(c) for c in self.candidates],
            "provenance": self.provenance,
        }
        if with_vector:
            out["direction"] = self.direction.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], direction: Tensor | None = None) -> CosmicSelection:
        """Inverse of :meth:`to_dict` (pass ``direction`` when written without it)."""

        def cand(d: dict[str, Any]) -> CosmicCandidate:
            known = set(CosmicCandidate.__dataclass_fields__)
            return CosmicCandidate(**{k: (_NAN if v is None else v) for k, v in d.items() if k in known})

        vec = direction if direction is not None else torch.tensor(data["direction"], dtype=torch.float32)
        return cls(
            [cand(c) for c in data["candidates"]],
            cand(data["best"]),
            vec,
            list(data["low_layers"]),
            list(data["layer_cosine"]),
            dict(data.get("provenance", {})),
            float(data.get("seconds", 0.0)),
        )


def eoi_means(lm: LoadedModel, prompts: Sequence[str], layers: Sequence[int]) -> dict[int, Tensor]:
    """Mean ``resid_pre`` at each end-of-instruction position, per layer (``{layer: [k, d]}``, float64)."""
    sites = [Site(layer) for layer in layers]
    res = collect(lm, list(prompts), sites, Positions("eoi"), "none", progress=False)
    return {s.layer: res.per_prompt(s).double().mean(0) for s in sites}


def _cos(a: Tensor, b: Tensor) -> float:
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-30))


def _rep(means: dict[int, Tensor], layers: Sequence[int]) -> Tensor:
    return torch.cat([means[layer].reshape(-1) for layer in layers])


def low_similarity_layers(
    harmful: dict[int, Tensor], harmless: dict[int, Tensor], fraction: float
) -> tuple[list[int], dict[int, float]]:
    """The ``⌈fraction · n⌉`` layers with the lowest ``cos(H_l, B_l)`` (sorted), and every layer's cosine."""
    cos = {layer: _cos(harmful[layer], harmless[layer]) for layer in harmful}
    n = max(1, math.ceil(fraction * len(cos)))
    return sorted(sorted(cos, key=lambda layer: cos[layer])[:n]), cos


def exact_score(
    lm: LoadedModel,
    vec: Tensor,
    layer: int,
    harmful: Sequence[str],
    harmless: Sequence[str],
    low: Sequence[int],
    clean_h: Tensor,
    clean_b: Tensor,
) -> tuple[float, float]:
    """``(S_comply, S_refuse)`` of one candidate ``vec`` (read at ``resid_pre`` ``layer``), by forward passes."""
    with ablate(lm, vec):
        ablated = _rep(eoi_means(lm, harmful, low), low)
    with add(lm, vec, 1.0, Site(layer), "all"):
        added = _rep(eoi_means(lm, harmless, low), low)
    return _cos(ablated, clean_b), _cos(added, clean_h)


def proxy_score(
    vec: Tensor, layer: int, low: Sequence[int], val_h: dict[int, Tensor], val_b: dict[int, Tensor]
) -> float:
    """Pass-free estimate of ``S_comply + S_refuse``: edit the clean means as if the write propagated unchanged."""
    r = vec.double()
    u = r / r.norm()
    abl = torch.cat([(val_h[x] - (val_h[x] @ u)[..., None] * u).reshape(-1) for x in low])
    addn = torch.cat([(val_b[x] + (r if x >= layer else 0.0)).reshape(-1) for x in low])
    return _cos(abl, _rep(val_b, low)) + _cos(addn, _rep(val_h, low))


def rank_cosmic(
    lm: LoadedModel,
    harmful_train: Sequence[str],
    harmless_train: Sequence[str],
    harmful_val: Sequence[str],
    harmless_val: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    low_fraction: float = 0.1,
    max_kl: float = 0.1,
    prune_last: float = 0.2,
    mode: str = "fast",
    top_k: int = 8,
    widen: int = 3,
) -> CosmicSelection:
    """Score and rank every candidate by COSMIC (module docstring); the best may fail the filters."""
    start = time.perf_counter()
    for name, p in (
        ("harmful_train", harmful_train),
        ("harmless_train", harmless_train),
        ("harmful_val", harmful_val),
        ("harmless_val", harmless_val),
    ):
        if len(p) < 2:
            raise SelectionError(f"{name} needs at least 2 prompts, got {len(p)}.")
    if mode not in COSMIC_MODES:
        raise SelectionError(f"Unknown COSMIC mode {mode!r}; use one of {COSMIC_MODES}.")
    if not 0 < low_fraction <= 1:
        raise SelectionError(f"low_fraction must be in (0, 1], got {low_fraction}.")
    if top_k < 1 or widen < 0:
        raise SelectionError(f"top_k must be >= 1 and widen >= 0, got {top_k} and {widen}.")
    chosen = list(range(lm.n_layers)) if layers is None else sorted(set(layers))
    bad = [x for x in chosen if not 0 <= x < lm.n_layers]
    if bad:
        raise SelectionError(f"Layers {bad} out of range for a model with {lm.n_layers} layers.")
    every = list(range(lm.n_layers))  # L_low is chosen among all layers, whatever the candidates
    train_h, train_b = eoi_means(lm, harmful_train, every), eoi_means(lm, harmless_train, every)
    low, cosines = low_similarity_layers(train_h, train_b, low_fraction)
    val_h, val_b = eoi_means(lm, harmful_val, low), eoi_means(lm, harmless_val, low)
    clean_h, clean_b = _rep(val_h, low), _rep(val_b, low)
    cutoff = lm.n_layers - int(lm.n_layers * prune_last)
    vectors: dict[tuple[int, int], Tensor] = {}
    for layer in chosen:
        diff = train_h[layer] - train_b[layer]
        for i in range(diff.shape[0]):
            vectors[(layer, i - diff.shape[0])] = diff[i].float()
    largest = max(float(v.norm()) for v in vectors.values())
    cands = {k: CosmicCandidate(k[0], k[1], float(v.norm())) for k, v in vectors.items()}
    live = [k for k, v in vectors.items() if float(v.norm()) > 1e-6 * largest and k[0] < cutoff]
    for k, c in cands.items():
        if k[0] >= cutoff:
            c.reason = f"layer in the last {prune_last:.0%}"
        elif k not in live:
            c.reason = "no difference between the sets"
    for k in live:
        cands[k].proxy = proxy_score(vectors[k], k[0], low, val_h, val_b)
    order = sorted(live, key=lambda k: -cands[k].proxy) if mode == "fast" else list(live)
    step = top_k if mode == "fast" else len(order)
    base_logits = last_token_logits(lm, list(harmless_val))
    done = 0
    for _round in range(widen + 1 if mode == "fast" else 1):
        batch = order[done : done + step]
        if not batch:
            break
        for k in batch:
            c = cands[k]
            c.s_comply, c.s_refuse = exact_score(
                lm, vectors[k], k[0], harmful_val, harmless_val, low, clean_h, clean_b
            )
            c.score = c.s_comply + c.s_refuse
        done += len(batch)
        # KL only where it can change the choice: down the exact ranking until one passes
        for k in sorted(order[:done], key=lambda k: -cands[k].score):
            c = cands[k]
            if c.kl != c.kl:
                with ablate(lm, vectors[k]):
                    c.kl = float(kl_rows(base_logits, last_token_logits(lm, list(harmless_val))).mean())
            c.eligible = c.kl <= max_kl
            c.reason = "" if c.eligible else f"KL {c.kl:.3f} > {max_kl}"
            if c.eligible:
                break
        if any(cands[k].eligible for k in order[:done]):
            break
    for k in order[done:]:
        cands[k].reason = cands[k].reason or "not scored exactly (proxy rank below top_k)"
    exact = sorted((c for c in cands.values() if c.exact), key=lambda c: (not c.eligible, -c.score))
    rest = sorted(
        (c for c in cands.values() if not c.exact), key=lambda c: -(c.proxy if c.proxy == c.proxy else -9)
    )
    ranked = exact + rest
    best = ranked[0]
    return CosmicSelection(
        ranked,
        best,
        vectors[best.key],
        low,
        [cosines[x] for x in every],
        provenance={
            "model": lm.spec,
            "model_fingerprint": lm.fingerprint(),
            "method": "diff_means",
            "selection": "cosmic",
            "site_point": "resid_pre",
            "positions": "eoi",
            "layers": chosen,
            "n_train": [len(harmful_train), len(harmless_train)],
            "n_val": [len(harmful_val), len(harmless_val)],
            "low_fraction": low_fraction,
            "max_kl": max_kl,
            "prune_last": prune_last,
            "mode": mode,
            "top_k": top_k if mode == "fast" else None,
            "safetyscope_version": __version__,
        },
        seconds=time.perf_counter() - start,
    )


def select_cosmic(
    lm: LoadedModel,
    harmful_train: Sequence[str],
    harmless_train: Sequence[str],
    harmful_val: Sequence[str],
    harmless_val: Sequence[str],
    **kwargs: Any,
) -> CosmicSelection:
    """:func:`rank_cosmic`, requiring the best candidate to pass the KL and layer filters.

    Raises:
        SelectionError: no candidate passes.
    """
    sel = rank_cosmic(lm, harmful_train, harmless_train, harmful_val, harmless_val, **kwargs)
    if not sel.best.eligible:
        raise SelectionError(
            f"No COSMIC candidate passes the filters (KL, layer pruning); best was layer "
            f"{sel.best.layer} ({sel.best.reason}). Try more prompts, a larger max_kl or mode='exhaustive'."
        )
    return sel
