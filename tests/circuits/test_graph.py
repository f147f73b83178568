"""Graph structure per family: node counts, GQA receivers, post-norm layer senders, parallel blocks."""

import json

import pytest

from safetyscope.circuits.graph import build_graph
from safetyscope.circuits.graph_io import graph_io
from safetyscope.model.tiny import TINY_FAMILIES


def _naive_edges(g):
    """Count edges by the definition, one pair at a time."""
    n = 0
    for sl, sk in zip(g.sender_layer, g.sender_kind, strict=True):
        for rl, rk in zip(g.receiver_layer, g.receiver_kind, strict=True):
            same_block_mlp = sl == rl and sk in ("head", "attn") and rk == "mlp" and not g.info["parallel"]
            n += sl < rl or same_block_mlp
    return n


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_graph_of_every_family(tiny_lms, family):
    lm = tiny_lms[family]
    g = build_graph(lm)
    info = g.info
    heads_per_layer = 1 if info["post_norm"] else info["n_heads"]
    assert len(g.senders) == 1 + lm.n_layers * (heads_per_layer + 1)
    assert len(g.receivers) == lm.n_layers * (info["n_heads"] + 2 * info["n_kv_heads"] + 1) + 1
    assert g.n_edges == _naive_edges(g) == info["n_edges"]
    assert g.receivers[-1] == "logits" and g.senders[0] == "input"
    assert info["post_norm"] == (family in ("gemma2", "gemma3_text", "olmo2"))
    assert info["parallel"] == (family == "gpt_neox")
    io = graph_io(lm, g)
    covered = sorted(r for lio in io for p in lio.projections for r in p.receivers)
    assert covered == [r for r, k in enumerate(g.receiver_kind) if k in "qkv"]
    # every projection column belongs to at most one receiver
    for lio in io:
        for p in lio.projections:
            cols = [c for cs in p.cols for c in cs.tolist()]
            assert len(cols) == len(set(cols))
    data = json.loads(json.dumps(g.to_dict()))
    assert len(data["edges"]) == g.n_edges and data["edges"][0]["score"] is None


def test_gqa_keys_and_values_belong_to_kv_heads(tiny_lms):
    g = build_graph(tiny_lms["llama"])  # 4 query heads, 2 key-value heads
    assert "a1.h3<q>" in g.receivers and "a1.kv1<k>" in g.receivers and "a1.kv2<k>" not in g.receivers
    r = g.receivers.index("a1.kv0<v>")
    assert g.mask[g.senders.index("a0.h3"), r] and not g.mask[g.senders.index("a1.h0"), r]
    assert g.mask[g.senders.index("a1.h0"), g.receivers.index("m1")]  # head -> same block's MLP


def test_parallel_block_mlp_does_not_read_its_own_heads(tiny_lms):
    g = build_graph(tiny_lms["gpt_neox"])
    assert not g.mask[g.senders.index("a1.h0"), g.receivers.index("m1")]
    assert g.mask[g.senders.index("a0.h0"), g.receivers.index("m1")]
