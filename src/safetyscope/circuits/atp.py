"""Node attribution patching (AtP): every site's patching effect from one forward and one backward pass.

For a site ``a`` (``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` of every block, and each
head's slice of ``attn_z``) at every position, the effect on the metric of patching the corrupted
activation into the clean run is estimated to first order (Nanda 2023; Kramár et al. 2024):

    AtP(a) = (a_corrupt − a_clean) · ∂m/∂a |_clean

It equals exact patching wherever the metric is linear in ``a`` (e.g. a logit difference read
through a linear path); elsewhere it is a ranking aid to be checked with
:func:`safetyscope.causal.patching_sweep` (mode ``noise``) on the top cells.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.sites import Site
from safetyscope.circuits.grad_hooks import read_with_grad
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits, model_inputs
from safetyscope.model.loading import LoadedModel

#: Points AtP scores (``attn_z`` per head).
ATP_POINTS: tuple[str, ...] = ("resid_pre", "resid_post", "attn_out", "mlp_out", "attn_z")


@dataclass
class AtPResult:
    """Per-site, per-position AtP scores (positions right-aligned: the last column is the last token).

    ``scores[key]`` is a list over positions; keys are site keys (``L3.attn_out``) and heads
    (``L3.h2``). ``labels`` are the first clean prompt's tokens when every pair has the same length.
    """

    scores: dict[str, list[float]]
    labels: list[str] | None
    clean_metric: float
    corrupt_metric: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def top(self, n: int = 20) -> list[tuple[str, int, float]]:
        """The ``n`` (key, position, score) cells of largest |score|."""
        cells = [(k, p, v) for k, vals in self.scores.items() for p, v in enumerate(vals)]
        return sorted(cells, key=lambda c: -abs(c[2]))[:n]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "scores": self.scores,
            "labels": self.labels,
            "clean_metric": self.clean_metric,
            "corrupt_metric": self.corrupt_metric,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AtPResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            dict(data["scores"]),
            data["labels"],
            data["clean_metric"],
            data["corrupt_metric"],
            dict(data.get("provenance", {})),
        )


def atp_sites(n_layers: int) -> list[Site]:
    """Every site AtP scores."""
    return [Site(layer, p) for layer in range(n_layers) for p in ATP_POINTS]  # type: ignore[arg-type]


def node_attribution(
    lm: LoadedModel, pairs: Pairs, metric: CircuitMetric, *, batch_size: int = 8
) -> AtPResult:
    """AtP of every site in :func:`atp_sites` at every position, mean over pairs."""
    t0 = time.perf_counter()
    sites = atp_sites(lm.n_layers)
    width = max(pairs.lengths)
    nh = None
    acc: dict[str, Tensor] = {}
    m_clean = m_corrupt = 0.0
    for idx in batches(pairs, batch_size):
        clean = [pairs.clean[i] for i in idx]
        logits_b, rec_b = last_logits(lm, [pairs.corrupt[i] for i in idx], sites)
        m_corrupt += float(metric.score(logits_b, idx).sum())
        with torch.enable_grad(), read_with_grad(lm.arch, sites) as seen:
            logits = lm.model(**model_inputs(lm, clean)).logits[:, -1]
            values = metric.score(logits, idx)
            f = values.sum() / len(pairs)
            acts = [seen[s] for s in sites]
            grads = torch.autograd.grad(f, acts, allow_unused=True)
        m_clean += float(values.detach().sum())
        for site, act, grad in zip(sites, acts, grads, strict=True):
            if grad is None:
                grad = torch.zeros_like(act)
            prod = (rec_b[site].float() - act.detach().float()) * grad.float()  # [b, p, w]
            if site.point == "attn_z":
                if nh is None:
                    nh = int(getattr(lm.model.config, "num_attention_heads", None) or lm.model.config.n_head)
                per = prod.view(*prod.shape[:2], nh, -1).sum(-1).sum(0)  # [p, heads]
                cols = {f"L{site.layer}.h{h}": per[:, h] for h in range(nh)}
            else:
                cols = {site.key: prod.sum(-1).sum(0)}
            for key, vec in cols.items():
                buf = acc.setdefault(key, torch.zeros(width, dtype=torch.float64))
                buf[width - vec.shape[0] :] += vec.double().cpu()
    labels = None
    if len(set(pairs.lengths)) == 1:
        labels = [lm.tokenizer.decode([t]) for t in pairs.clean[0]]
    prov = {
        "model": lm.spec,
        "method": "atp",
        "metric": metric.to_dict(),
        "n_pairs": len(pairs),
        "seconds": time.perf_counter() - t0,
    }
    return AtPResult(
        {k: v.tolist() for k, v in acc.items()}, labels, m_clean / len(pairs), m_corrupt / len(pairs), prov
    )
