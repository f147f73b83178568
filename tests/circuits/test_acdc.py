"""ACDC: its visiting order, its thresholds, and its KL bookkeeping against a direct evaluation."""

from __future__ import annotations

import pytest
import torch

from safetyscope.circuits.acdc import acdc, acdc_order
from safetyscope.circuits.evaluate import circuit_logits
from safetyscope.circuits.graph import build_graph
from safetyscope.circuits.pairs import encode_pairs, pair_logits
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.logits import kl_rows

from .conftest import CLEAN, CORRUPT


def test_order_visits_every_edge_from_the_logits_back(llama):
    g = build_graph(llama)
    order = acdc_order(g)
    assert len(order) == g.n_edges and len(set(order)) == g.n_edges
    layers = [g.receiver_layer[r] for _, r in order]
    assert layers == sorted(layers, reverse=True) and g.receivers[order[0][1]] == "logits"


def test_thresholds_and_kl_bookkeeping(llama):
    pairs = encode_pairs(llama, CLEAN, CORRUPT, chat=False)
    clean, corrupt = pair_logits(llama, pairs)
    g0 = build_graph(llama)
    empty = circuit_logits(llama, pairs, g0, [torch.zeros_like(g0.mask)])[0]
    full = circuit_logits(llama, pairs, g0, [g0.mask])[0]
    torch.testing.assert_close(empty, corrupt, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(full, clean, atol=1e-4, rtol=1e-4)
    g_all, none_left = acdc(llama, pairs, tau=1e9)
    assert int(none_left.sum()) == 0
    assert g_all.meta["final_kl"] == pytest.approx(float(kl_rows(clean, corrupt).mean()), rel=1e-4, abs=1e-6)
    total = g_all.meta["final_kl"]
    g_mid, kept_mid = acdc(llama, pairs, tau=0.02 * total)
    assert 0 < int(kept_mid.sum()) < g_mid.n_edges
    assert g_mid.meta["final_kl"] < total
    g_small = g_mid
    assert not (kept_mid & ~g_mid.mask).any()
    # the first tested edge's score is the KL increase of removing it from the full graph
    s, r = acdc_order(g_small)[0]
    cand = g_small.mask.clone()
    cand[s, r] = False
    direct = float(kl_rows(clean, circuit_logits(llama, pairs, g_small, [cand])[0]).mean())
    base = float(kl_rows(clean, full).mean())
    assert float(g_small.scores[s, r]) == pytest.approx(direct - base, abs=1e-6)
    # the kept circuit's KL is what ACDC reports
    kept_kl = float(kl_rows(clean, circuit_logits(llama, pairs, g_mid, [kept_mid])[0]).mean())
    assert kept_kl == pytest.approx(g_mid.meta["final_kl"], abs=1e-6)
    with pytest.raises(SafetyscopeError, match="tau"):
        acdc(llama, pairs, tau=-1.0)
