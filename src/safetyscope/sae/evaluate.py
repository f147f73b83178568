"""How good is an SAE: sparsity, reconstruction, latent health, and the loss when it replaces the site.

* ``l0``: mean number of active latents per token.
* ``fvu`` (fraction of variance unexplained): ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``.
* ``dead_fraction``: latents never active on the evaluation tokens; ``dense_fraction``: latents
  active on more than ``dense_threshold`` of them.
* ``ce_loss_recovered``: the next-token cross-entropy with the SAE's reconstruction spliced into the
  site (at the positions the SAE reads; :func:`safetyscope.activations.edit`), against zero
  ablation of those positions: ``(CE_zero - CE_sae) / (CE_zero - CE_clean)``. 1 is perfect, 0 is
  no better than deleting the activation. ``ce_loss_recovered_vs_mean`` uses mean ablation (the
  corpus mean activation) as the floor, the harder control.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.evaluation.logits import nll_rows
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.corpus import TokenCorpus
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.sae.stream import ActivationStore


@dataclass
class SAEMetrics:
    """Evaluation figures of one SAE (see the module docstring), JSON-ready."""

    l0: float
    fvu: float
    dead_fraction: float
    dense_fraction: float
    tokens: int
    ce_clean: float | None = None
    ce_sae: float | None = None
    ce_zero: float | None = None
    ce_mean: float | None = None
    ce_loss_recovered: float | None = None
    ce_loss_recovered_vs_mean: float | None = None
    ce_tokens: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEMetrics:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@torch.no_grad()
def reconstruction_metrics(sae: SparseAutoencoder, rows: ActivationStore | Tensor, *, batch_size: int = 4096,
                           dense_threshold: float = 0.1) -> SAEMetrics:
    """L0, FVU, dead and dense fractions over every row of ``rows`` (streamed in batches)."""
    chunks = (rows.shard(i) for i in range(len(rows.shards))) if isinstance(rows, ActivationStore) else [rows]
    n, l0, sse = 0, 0.0, 0.0
    s1 = torch.zeros(sae.cfg.d_in, dtype=torch.float64)
    s2 = torch.zeros((), dtype=torch.float64)
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    for chunk in chunks:
        for x in chunk.split(batch_size):
            f = sae.encode(x)
            x_hat = sae.decode(f, x)
            active = f > 0
            n += len(x)
            l0 += float(active.sum())
            fires += active.sum(0).double()
            sse += float((x.double() - x_hat.double()).pow(2).sum())
            s1 += x.double().sum(0)
            s2 += x.double().pow(2).sum()
    var = float(s2 - s1.pow(2).sum() / n)
    freq = fires / n
    return SAEMetrics(l0=l0 / n, fvu=sse / var, dead_fraction=float((freq == 0).double().mean()),
                      dense_fraction=float((freq > dense_threshold).double().mean()), tokens=n,
                      provenance={"dense_threshold": dense_threshold, "site": sae.cfg.site,
                                  "safetyscope_version": __version__})


def latent_frequencies(sae: SparseAutoencoder, rows: Tensor, batch_size: int = 4096) -> Tensor:
    """Fraction of ``rows`` on which each latent is active ``[d_sae]``."""
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    with torch.no_grad():
        for x in rows.split(batch_size):
            fires += (sae.encode(x) > 0).sum(0).double()
    return fires / max(1, len(rows))


@torch.no_grad()
def ce_loss_recovered(lm: LoadedModel, sae: SparseAutoencoder, site: Site, corpus: TokenCorpus, mean: Tensor, *,
                      max_batch_tokens: int = 8192, progress: bool = False) -> dict[str, float]:
    """Mean next-token CE clean, with the SAE spliced in, zero-ablated and mean-ablated (see module docstring)."""
    seqs = [s for s in corpus.seqs if len(s.ids) > 1]
    totals = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "mean": 0.0}
    count = 0
    mean = mean.to(lm.device)

    def run(idx: list[int]) -> list[None]:
        nonlocal count
        batch = [seqs[i] for i in idx]
        inputs = pad_left([s.ids for s in batch], pad_id(lm.tokenizer), lm.device)
        width = inputs["input_ids"].shape[1]
        mask = torch.zeros(len(batch), width, 1, dtype=torch.bool, device=lm.device)
        for j, s in enumerate(batch):
            for p in s.positions:
                mask[j, width - len(s.ids) + p] = True
        tgt_rows = [(j, width - len(s.ids) + t) for j, s in enumerate(batch) for t in range(len(s.ids) - 1)]
        r = torch.tensor([a for a, _ in tgt_rows], device=lm.device)
        c = torch.tensor([b for _, b in tgt_rows], device=lm.device)
        targets = inputs["input_ids"][r, c + 1]
        fns = {"clean": None,
               "sae": lambda _s, x: torch.where(mask, sae(x).to(x.dtype), x),
               "zero": lambda _s, x: torch.where(mask, torch.zeros_like(x), x),
               "mean": lambda _s, x: torch.where(mask, mean.to(x.dtype).expand_as(x), x)}
        for name, fn in fns.items():
            if fn is None:
                logits = lm.model(**inputs, use_cache=False).logits
            else:
                with edit(lm.arch, site, fn):
                    logits = lm.model(**inputs, use_cache=False).logits
            totals[name] += float(nll_rows(logits[r, c], targets).sum())
        count += len(tgt_rows)
        return [None] * len(idx)

    for _ in iter_batches([len(s.ids) for s in seqs], run, max_batch_tokens=max_batch_tokens, progress=progress,
                          description="CE with the SAE spliced in"):
        pass
    ce = {k: v / max(1, count) for k, v in totals.items()}

    def recovered(floor: float) -> float:
        gap = floor - ce["clean"]
        return (floor - ce["sae"]) / gap if gap != 0 else float("nan")

    return {"ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"], "ce_mean": ce["mean"],
            "ce_loss_recovered": recovered(ce["zero"]), "ce_loss_recovered_vs_mean": recovered(ce["mean"]),
            "ce_tokens": count}


def evaluate_sae(lm: LoadedModel, sae: SparseAutoencoder, site: Site, rows: ActivationStore | Tensor,
                 corpus: TokenCorpus | None = None, **kwargs: Any) -> SAEMetrics:
    """:func:`reconstruction_metrics` on ``rows`` plus :func:`ce_loss_recovered` on ``corpus`` (when given)."""
    metrics = reconstruction_metrics(sae, rows)
    if corpus is not None:
        mean = rows.mean() if isinstance(rows, ActivationStore) else rows.double().mean(0)
        for key, value in ce_loss_recovered(lm, sae, site, corpus, mean.float(), **kwargs).items():
            setattr(metrics, key, value)
        metrics.provenance.update({"model": lm.spec, "model_fingerprint": lm.fingerprint(), "corpus": corpus.spec,
                                   "corpus_hash": corpus.hash})
    return metrics
