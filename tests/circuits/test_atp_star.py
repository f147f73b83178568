"""AtP*: the QK fix tracks exact patching on query/key edges better than EAP; elsewhere it is EAP."""

from __future__ import annotations

import pytest
import torch

from safetyscope.circuits.atp_star import atp_star_scores, attention_module
from safetyscope.circuits.eap import edge_attribution
from safetyscope.circuits.exact import exact_edge_scores
from safetyscope.circuits.metric import circuit_metric
from safetyscope.circuits.pairs import encode_pairs
from safetyscope.errors import UnknownArchitectureError

from .conftest import CLEAN, CORRUPT


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_qk_fix_beats_eap_on_query_key_edges(tiny_lms, family):
    lm = tiny_lms[family]
    pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
    with torch.no_grad():  # sharpen attention so the softmax saturates and first order fails
        for layer in range(lm.n_layers):
            attention_module(lm, layer).q_proj.weight.mul_(6.0)
    try:
        star = atp_star_scores(lm, pairs, met, batch_size=1)
        eap = edge_attribution(lm, pairs, met, method="eap")
        qk = torch.tensor([k in ("q", "k") for k in eap.receiver_kind])
        edges = eap.edge_index()
        on_qk = edges[qk[edges[:, 1]]]
        exact = exact_edge_scores(lm, pairs, met, eap, on_qk, edges_per_pass=64)
        err_star = (star.scores[on_qk[:, 0], on_qk[:, 1]] - exact).abs().sum()
        err_eap = (eap.scores[on_qk[:, 0], on_qk[:, 1]] - exact).abs().sum()
        assert exact.abs().max() > 1e-4
        assert err_star < 0.2 * err_eap, (float(err_star), float(err_eap))
        other = ~qk[None, :] & eap.mask
        torch.testing.assert_close(star.scores[other], eap.scores[other], atol=1e-6, rtol=1e-4)
    finally:
        with torch.no_grad():
            for layer in range(lm.n_layers):
                attention_module(lm, layer).q_proj.weight.div_(6.0)


def test_fused_attention_is_refused(tiny_lms):
    with pytest.raises(UnknownArchitectureError, match="q_proj/k_proj"):
        attention_module(tiny_lms["gpt2"], 0)
