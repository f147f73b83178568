"""Choosing a circuit from a scored graph: top-n, threshold and greedy pruning; AUROC against a known circuit.

A circuit is a boolean mask ``[n_senders, n_receivers]`` inside the graph's real-edge mask.
Scores are ranked by magnitude (an edge whose corruption *raises* the metric matters too).
"""

from __future__ import annotations

import torch
from torch import Tensor

from safetyscope.circuits.graph import Graph
from safetyscope.errors import SafetyscopeError

#: Pruning rules :func:`prune` accepts.
PRUNINGS: tuple[str, ...] = ("topn", "threshold", "greedy")


def _scores(graph: Graph) -> Tensor:
    if graph.scores is None:
        raise SafetyscopeError("The graph has no scores yet; score it with atp, eap, eap-ig or exact first.")
    return graph.scores.abs().masked_fill(~graph.mask, -1.0)


def top_n(graph: Graph, n: int) -> Tensor:
    """The ``n`` edges of largest |score|."""
    if n < 0:
        raise SafetyscopeError(f"Circuit size must be >= 0, got {n}.")
    flat = _scores(graph).flatten()
    out = torch.zeros_like(flat, dtype=torch.bool)
    out[flat.topk(min(n, graph.n_edges)).indices] = True
    return out.view_as(graph.mask) & graph.mask


def threshold(graph: Graph, tau: float) -> Tensor:
    """Every edge with |score| >= ``tau``."""
    return (_scores(graph) >= tau) & graph.mask


def _owns(kind: str, head: int, sender_kind: str, sender_head: int, group: int) -> bool:
    """Whether a sender of the same block is the node a receiver belongs to."""
    if kind == "mlp":
        return sender_kind == "mlp"
    if kind not in ("q", "k", "v") or sender_kind not in ("head", "attn"):
        return False
    if sender_kind == "attn":
        return True
    return sender_head == head if kind == "q" else sender_head // group == head


def receiver_owners(graph: Graph) -> list[list[int]]:
    """For each receiver, the senders that are the same node (a head's q/k/v, an MLP's input)."""
    nh, nkv = graph.info["n_heads"], graph.info["n_kv_heads"]
    group = max(1, nh // max(1, nkv))
    owners: list[list[int]] = []
    for layer, kind, head in zip(graph.receiver_layer, graph.receiver_kind, graph.receiver_head, strict=True):
        owners.append(
            [
                s
                for s, (sl, sk, sh) in enumerate(
                    zip(graph.sender_layer, graph.sender_kind, graph.sender_head, strict=True)
                )
                if sl == layer and _owns(kind, head, sk, sh, group)
            ]
        )
    return owners


def greedy(graph: Graph, n: int) -> Tensor:
    """Grow from the logits: repeatedly add the highest-|score| edge into a node already in the circuit."""
    scores = _scores(graph)
    owners = receiver_owners(graph)
    n_r = len(graph.receivers)
    active_r = torch.zeros(n_r, dtype=torch.bool)
    active_r[n_r - 1] = True
    out = torch.zeros_like(graph.mask)
    for _ in range(min(n, graph.n_edges)):
        cand = scores.masked_fill(~active_r[None, :] | out, -1.0)
        best = int(cand.argmax())
        s, r = divmod(best, n_r)
        if cand[s, r] < 0:
            break
        out[s, r] = True
        for rr, own in enumerate(owners):
            if s in own:
                active_r[rr] = True
    return out


def prune(graph: Graph, rule: str = "topn", n: int | None = None, tau: float | None = None) -> Tensor:
    """Dispatch to :func:`top_n`, :func:`threshold` or :func:`greedy`."""
    if rule not in PRUNINGS:
        raise SafetyscopeError(f"Unknown pruning {rule!r}; use one of {list(PRUNINGS)}.")
    if rule == "threshold":
        if tau is None:
            raise SafetyscopeError("Threshold pruning needs a threshold (tau).")
        return threshold(graph, tau)
    if n is None:
        raise SafetyscopeError(f"{rule} pruning needs a circuit size n.")
    return top_n(graph, n) if rule == "topn" else greedy(graph, n)


def auroc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (ties count half)."""
    pos, neg = scores[labels.bool()], scores[~labels.bool()]
    if len(pos) == 0 or len(neg) == 0:
        raise SafetyscopeError("AUROC needs at least one positive and one negative edge.")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())
