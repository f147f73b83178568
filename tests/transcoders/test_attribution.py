"""Attribution graphs: every edge equals the naive effect of removing its source in the frozen model."""

from __future__ import annotations

import pytest
import torch
from tests.transcoders.helpers import random_transcoders

from safetyscope.errors import SafetyscopeError
from safetyscope.transcoders import frozen_replay, local_replacement, mlp_module
from safetyscope.transcoders.attribution import attribution_graph


def _replay_targets(lm, tcs, ids, rec, perturb=None, embed=None):
    """Feature pre-activations per layer and last-position logits of the frozen model (naive forward)."""
    seen = {}
    hooks = [
        mlp_module(lm, la).register_forward_pre_hook(lambda _m, a, _la=la: seen.__setitem__(_la, a[0]))
        for la in tcs
    ]
    try:
        with torch.no_grad(), frozen_replay(lm, rec, perturb, embed):
            logits = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].double()
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        return {la: tcs[la].pre_acts(seen[la])[0].double() for la in tcs}, logits


def test_edges_match_naive_ablation(llama):
    tcs = random_transcoders(llama, k=4)
    ids = [1, 5, 17, 42, 8, 23]
    g = attribution_graph(llama, tcs, ids, targets_per_pass=7)
    with local_replacement(llama, tcs) as rec:
        llama.model(input_ids=torch.tensor([ids]), use_cache=False)
    pre0, logits0 = _replay_targets(llama, tcs, ids, rec)
    logit_row = g.indices("logit")[0]
    tok = g.nodes[logit_row].feature
    base_logit = logits0[tok] - logits0.mean()
    gen = torch.Generator().manual_seed(0)
    feats = g.indices("feature")
    checked = 0
    for src in [
        *torch.tensor(feats)[torch.randperm(len(feats), generator=gen)[:6]].tolist(),
        *g.indices("error")[::4],
        *g.indices("embedding")[:3],
    ]:
        s = g.nodes[src]
        embed = None
        perturb = None
        if s.kind == "feature":
            delta = -s.activation * tcs[s.layer].W_dec[s.feature].detach()
        elif s.kind == "error":
            delta = -rec.errors[s.layer][0, s.position].detach()
        else:
            embed = rec.embed.detach().clone()
            embed[0, s.position] = 0.0
        if s.kind != "embedding":

            def perturb(layer, y, _s=s, _d=delta):
                if layer != _s.layer:
                    return y
                y = y.clone()
                y[0, _s.position] += _d.to(y.dtype)
                return y

        pre1, logits1 = _replay_targets(llama, tcs, ids, rec, perturb, embed)
        naive_logit = (logits1[tok] - logits1.mean()) - base_logit
        assert float(g.adjacency[logit_row, src]) == pytest.approx(-float(naive_logit), abs=1e-4, rel=1e-3)
        for t in feats[:40]:
            tn = g.nodes[t]
            naive = pre1[tn.layer][tn.position, tn.feature] - pre0[tn.layer][tn.position, tn.feature]
            assert float(g.adjacency[t, src]) == pytest.approx(-float(naive), abs=1e-4, rel=1e-3)
            checked += 1
    assert checked > 100
    # a feature never reads a feature of its own or a later layer, nor a later position
    for t in feats:
        for s in feats:
            if g.nodes[s].layer >= g.nodes[t].layer or g.nodes[s].position > g.nodes[t].position:
                assert g.adjacency[t, s] == 0.0


def test_targets_per_pass_does_not_change_edges(llama):
    tcs = random_transcoders(llama, k=3)
    ids = [1, 9, 4, 30]
    a = attribution_graph(llama, tcs, ids, targets_per_pass=1)
    b = attribution_graph(llama, tcs, ids, targets_per_pass=64)
    assert torch.allclose(a.adjacency, b.adjacency, atol=1e-6)
    assert a.meta["passes"] == a.meta["n_features"] + 1 and b.meta["passes"] == 1


def test_bad_inputs(llama):
    with pytest.raises(SafetyscopeError, match="at least one transcoder"):
        attribution_graph(llama, {}, [1, 2])
    with pytest.raises(SafetyscopeError, match="outside the vocabulary"):
        attribution_graph(llama, random_transcoders(llama, k=2), [1, 2], targets=[10**6])
