"""Influence and pruning on a hand-built graph, and on a real tiny-model graph."""

from __future__ import annotations

import json

import pytest
import torch
from tests.transcoders.helpers import random_transcoders

from safetyscope.errors import SafetyscopeError
from safetyscope.transcoders.attribution import AttributionGraph, Node, attribution_graph
from safetyscope.transcoders.figure import save_graph_figure
from safetyscope.transcoders.prune import influence, prune_graph


def _toy() -> AttributionGraph:
    # emb0 -> f_a (w 3) ; err -> f_a (w 1) ; f_a -> logit (w 2) ; f_b -> logit (w 2) ; emb0 -> f_b (1)
    nodes = [
        Node("feature", 0, 0, 1),
        Node("feature", 0, 0, 2),
        Node("error", 0, 0),
        Node("embedding", -1, 0),
        Node("logit", 1, 0, 5),
    ]
    a = torch.zeros(5, 5, dtype=torch.float64)
    a[0, 3], a[0, 2], a[1, 3] = 3.0, 1.0, 1.0
    a[4, 0], a[4, 1] = 2.0, -2.0
    return AttributionGraph(nodes, a, ["x"], [1.0], {"n_layers": 1})


def test_influence_by_hand():
    infl, _, _ = influence(_toy())
    # logit splits 1/2, 1/2 onto the features; f_a splits 3/4 emb, 1/4 err; f_b all emb
    assert infl.tolist() == pytest.approx([0.5, 0.5, 0.125, 0.875, 0.0])
    p = prune_graph(_toy(), node_threshold=0.4)
    assert p.node_mask.tolist() == [
        True,
        False,
        True,
        True,
        True,
    ]  # one feature is enough for 0.4 (exactly 0.5)
    assert p.explained_share == pytest.approx(0.5)
    assert p.error_share == pytest.approx(0.125)  # of the terminal mass (emb 0.875 + err 0.125)
    assert not p.edge_mask[:, 1].any() and not p.edge_mask[1].any()
    full = prune_graph(_toy(), node_threshold=1.0, edge_threshold=1.0)
    assert full.node_mask.all() and full.edge_mask.sum() == 5
    with pytest.raises(SafetyscopeError, match="node_threshold"):
        prune_graph(_toy(), node_threshold=0.0)


def test_pruning_a_real_graph_and_export(llama, tmp_path):
    g = attribution_graph(llama, random_transcoders(llama, k=4), [1, 5, 17, 42, 8])
    p = prune_graph(g, 0.8)
    n_feat = len(g.indices("feature"))
    kept = int(p.node_mask[g.indices("feature")].sum())
    assert 0 < kept < n_feat and p.explained_share >= 0.8
    smaller = prune_graph(g, 0.5)
    assert int(smaller.node_mask.sum()) < int(p.node_mask.sum())
    data = json.loads(json.dumps(p.to_dict()))
    ids = {n["id"] for n in data["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in data["edges"])
    assert 0 <= data["error_share"] <= 1
    files = save_graph_figure(p, tmp_path, "g")
    assert all(f.stat().st_size > 1000 for f in files)
