"""ACDC: automatic circuit discovery by iterative edge pruning (Conmy et al. 2023).

Start from the full graph. Visit receivers from the logits backwards (deepest layer first) and,
for each receiver, its incoming edges from the latest sender to the earliest. Remove an edge
(its receiver reads the sender's corrupted write instead, :mod:`safetyscope.circuits.evaluate`)
when the KL divergence of the circuit's next-token distribution from the full model's rises by
less than ``tau``:

    remove u -> v  if  KL(model || circuit - {u -> v}) - KL(model || circuit) < tau

(KL averaged over prompt pairs, last position). The result is one circuit per ``tau``; each
edge's score is the KL increase measured when it was tested (the quantity ACDC thresholds), so
the graph can also be ranked for top-n comparisons. Cost: one forward pass per edge (batched
over pairs), sequential by design.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from safetyscope.circuits.evaluate import circuit_logits
from safetyscope.circuits.graph import Graph, build_graph
from safetyscope.circuits.pairs import Pairs, pair_logits
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.logits import kl_rows
from safetyscope.model.loading import LoadedModel


def acdc_order(graph: Graph) -> list[tuple[int, int]]:
    """The edges in ACDC's visiting order: receivers deepest first, senders latest first."""
    recv = sorted(range(len(graph.receivers)), key=lambda r: (-graph.receiver_layer[r], -r))
    out = []
    for r in recv:
        senders = graph.mask[:, r].nonzero()[:, 0].tolist()
        out += [(s, r) for s in sorted(senders, reverse=True)]
    return out


def acdc(
    lm: LoadedModel,
    pairs: Pairs,
    tau: float,
    *,
    graph: Graph | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Graph, Tensor]:
    """Run ACDC at threshold ``tau``; return the graph (scores = KL increases) and the kept circuit mask."""
    if tau < 0:
        raise SafetyscopeError(f"ACDC threshold tau must be >= 0, got {tau}.")
    t0 = time.perf_counter()
    graph = graph or build_graph(lm)
    clean, _ = pair_logits(lm, pairs, batch_size)

    def kl(circuit: Tensor) -> float:
        logits = circuit_logits(lm, pairs, graph, [circuit], batch_size=batch_size)[0]
        return float(kl_rows(clean, logits).mean())

    current = graph.mask.clone()
    cur_kl = kl(current)
    scores = torch.zeros(graph.mask.shape, dtype=torch.float64)
    order = acdc_order(graph)
    for i, (s, r) in enumerate(order):
        cand = current.clone()
        cand[s, r] = False
        new_kl = kl(cand)
        scores[s, r] = new_kl - cur_kl
        if new_kl - cur_kl < tau:
            current, cur_kl = cand, new_kl
        if progress is not None:
            progress(i + 1, len(order))
    graph.scores = scores * graph.mask
    graph.meta = {
        "method": "acdc",
        "tau": tau,
        "n_pairs": len(pairs),
        "passes": len(order) + 1,
        "kept_edges": int(current.sum()),
        "final_kl": cur_kl,
        "seconds": time.perf_counter() - t0,
    }
    return graph, current
