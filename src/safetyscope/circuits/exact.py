"""Exact edge patching: the ground truth that EAP and EAP-IG estimate.

For an edge ``u → v``, the clean run is repeated with ``v``'s input changed by ``a_u' − a_u``
(the sender's corrupted minus clean write) and nothing else; the score is the mean over pairs of
``m(patched) − m(clean)``. Many edges share one forward pass: each (edge, pair) is one row of an
expanded batch, chunked by ``edges_per_pass``. Cost: one row per edge and pair, so use it on
small graphs or on a random sample of edges (:func:`sample_edges`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from safetyscope.circuits.graph import Graph
from safetyscope.circuits.graph_io import graph_io
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits, model_inputs
from safetyscope.circuits.senders import sender_deltas, sender_sites
from safetyscope.circuits.taps import receiver_patches
from safetyscope.model.loading import LoadedModel


def sample_edges(graph: Graph, n: int | None, seed: int = 0) -> Tensor:
    """``[k, 2]`` (sender, receiver) pairs: every edge when ``n`` is ``None`` or >= the edge count, else ``n`` at random."""
    idx = graph.edge_index()
    if n is None or n >= len(idx):
        return idx
    gen = torch.Generator().manual_seed(seed)
    return idx[torch.randperm(len(idx), generator=gen)[:n].sort().values]


@torch.no_grad()
def exact_edge_scores(
    lm: LoadedModel,
    pairs: Pairs,
    metric: CircuitMetric,
    graph: Graph,
    edges: Tensor,
    *,
    batch_size: int = 8,
    edges_per_pass: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Mean over pairs of ``m(clean, edge patched) − m(clean)`` for each row of ``edges`` (``[k, 2]``)."""
    io = graph_io(lm, graph)
    sites = sorted(sender_sites(graph))
    out = torch.zeros(len(edges), dtype=torch.float64)
    total, done = len(edges) * len(pairs), 0
    for idx in batches(pairs, batch_size):
        clean = [pairs.clean[i] for i in idx]
        logits_a, rec_a = last_logits(lm, clean, sites)
        _, rec_b = last_logits(lm, [pairs.corrupt[i] for i in idx], sites)
        base = metric.score(logits_a, idx)
        deltas = sender_deltas(lm, graph, rec_a, rec_b)
        b = len(idx)
        for start in range(0, len(edges), edges_per_pass):
            chunk = edges[start : start + edges_per_pass]
            k = len(chunk)
            fixes: dict[int, Tensor] = {}
            for e, (s, r) in enumerate(chunk.tolist()):
                fix = fixes.setdefault(r, deltas.new_zeros(k * b, *deltas.shape[2:]))
                fix[e * b : (e + 1) * b] = deltas[s]
            with receiver_patches(lm, graph, io, lambda r, _x, _f=fixes: _f.get(r)):
                logits = lm.model(**model_inputs(lm, clean * k)).logits[:, -1].float()
            vals = metric.score(logits, idx * k).view(k, b) - base.view(1, b)
            out[start : start + k] += vals.sum(1).cpu()
            done += k * b
            if progress is not None:
                progress(done, total)
    return out / len(pairs)


def edge_positions(graph: Graph, edges: Tensor) -> Tensor:
    """Indices of ``edges`` (``[k, 2]``) in :meth:`Graph.edge_index` order (for comparing with ``edge_scores``)."""
    flat = graph.mask.flatten().cumsum(0) - 1
    return flat[edges[:, 0] * graph.mask.shape[1] + edges[:, 1]]


__all__ = ["edge_positions", "exact_edge_scores", "sample_edges"]
