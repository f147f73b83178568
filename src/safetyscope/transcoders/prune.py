"""Pruning an attribution graph by influence on the logits, and its JSON form.

With ``A`` the edge matrix (rows: targets), ``M = |A|`` row-normalised (each target's incoming
weights sum to 1) and ``w`` the logit nodes' weights (their probabilities, normalised), the
*influence* of every node on the logits sums over all paths (Anthropic 2025):

    influence = w M + w M^2 + ... = w M (I - M)^{-1}          (M is nilpotent: the graph is a DAG)

* Nodes: error, embedding and logit nodes are always kept; features are kept in decreasing
  influence until their cumulative influence reaches ``node_threshold`` (default 0.8) of all
  features' influence. ``explained_share`` is the share actually reached (>= the threshold).
* Edges among kept nodes are scored ``(influence[t] + w[t]) * M[t, s]`` and kept in decreasing
  score until ``edge_threshold`` (default 0.98) of the total.
* ``error_share``: of the influence that ends at *terminal* nodes (no incoming edges: embeddings,
  error nodes, features fed by biases only), the part ending at error nodes, i.e. what the
  transcoders fail to explain (``replacement_score = 1 - error_share``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.errors import SafetyscopeError
from safetyscope.transcoders.attribution import AttributionGraph


@dataclass
class PrunedGraph:
    """Kept nodes and edges of an :class:`AttributionGraph`, with the shares they explain."""

    graph: AttributionGraph
    influence: Tensor  # [n_nodes]
    node_mask: Tensor  # [n_nodes] bool
    edge_mask: Tensor  # [n_nodes, n_nodes] bool (target, source)
    node_threshold: float
    edge_threshold: float
    explained_share: float
    edge_share: float
    error_share: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: kept nodes (with influence) and edges (``source``, ``target``, ``weight``)."""
        g = self.graph
        keep = self.node_mask.nonzero()[:, 0].tolist()
        nodes = [
            {
                "id": g.nodes[i].id,
                "kind": g.nodes[i].kind,
                "layer": g.nodes[i].layer,
                "position": g.nodes[i].position,
                "feature": g.nodes[i].feature,
                "activation": g.nodes[i].activation,
                "label": g.nodes[i].label,
                "token": g.tokens[g.nodes[i].position] if g.nodes[i].kind != "logit" else g.nodes[i].label,
                "influence": float(self.influence[i]),
            }
            for i in keep
        ]
        edges = [
            {"source": g.nodes[s].id, "target": g.nodes[t].id, "weight": float(g.adjacency[t, s])}
            for t, s in self.edge_mask.nonzero().tolist()
        ]
        return {
            "tokens": g.tokens,
            "nodes": nodes,
            "edges": edges,
            "explained_share": self.explained_share,
            "edge_share": self.edge_share,
            "error_share": self.error_share,
            "replacement_score": 1.0 - self.error_share,
            "node_threshold": self.node_threshold,
            "edge_threshold": self.edge_threshold,
            "n_nodes_total": len(g.nodes),
            "n_features_total": len(g.indices("feature")),
            "logit_probs": g.logit_probs,
            "meta": g.meta,
            **self.extra,
        }


def influence(graph: AttributionGraph) -> tuple[Tensor, Tensor, Tensor]:
    """``(influence [n], M [n, n], w [n])`` (see the module docstring)."""
    a = graph.adjacency.abs()
    rows = a.sum(1, keepdim=True)
    m = torch.where(rows > 0, a / rows.clamp_min(1e-300), torch.zeros_like(a))
    w = torch.zeros(len(graph.nodes), dtype=torch.float64)
    logits = graph.indices("logit")
    p = torch.tensor(graph.logit_probs, dtype=torch.float64)
    w[logits] = p / p.sum() if float(p.sum()) > 0 else torch.full_like(p, 1 / len(p))
    eye = torch.eye(len(w), dtype=torch.float64)
    infl = torch.linalg.solve((eye - m).T, m.T @ w)
    return infl, m, w


def prune_graph(
    graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98
) -> PrunedGraph:
    """Keep the features and edges that carry the given shares of influence (module docstring)."""
    for name, v in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 < v <= 1.0:
            raise SafetyscopeError(f"{name} must be in (0, 1], got {v}.")
    infl, m, w = influence(graph)
    feats = torch.tensor(graph.indices("feature"), dtype=torch.long)
    keep = torch.tensor([n.kind != "feature" for n in graph.nodes])
    explained = 1.0
    if len(feats):
        fi = infl[feats]
        total = float(fi.sum())
        order = fi.argsort(descending=True)
        cum = fi[order].cumsum(0) / max(total, 1e-300)
        n_keep = int((cum < node_threshold).sum()) + 1 if total > 0 else 0
        keep[feats[order[:n_keep]]] = True
        explained = float(cum[n_keep - 1]) if n_keep else 0.0
    score = (infl + w)[:, None] * m * keep[:, None] * keep[None, :]
    flat = score.flatten()
    total_e = float(flat.sum())
    edge_mask = torch.zeros_like(score, dtype=torch.bool)
    edge_share = 0.0
    if total_e > 0:
        order = flat.argsort(descending=True)
        cum = flat[order].cumsum(0) / total_e
        n_e = int((cum < edge_threshold).sum()) + 1
        edge_mask.view(-1)[order[:n_e]] = True
        edge_share = float(cum[n_e - 1])
    terminal = graph.adjacency.abs().sum(1) == 0
    kinds = [n.kind for n in graph.nodes]
    term_src = terminal & torch.tensor([k != "logit" for k in kinds])
    err = torch.tensor([k == "error" for k in kinds])
    denom = float(infl[term_src].sum())
    error_share = float(infl[term_src & err].sum()) / denom if denom > 0 else float("nan")
    return PrunedGraph(
        graph, infl, keep, edge_mask, node_threshold, edge_threshold, explained, edge_share, error_share
    )
