"""EAP and EAP-IG against exact edge patching."""

import pytest
import torch

from safetyscope.circuits.eap import edge_attribution
from safetyscope.circuits.exact import edge_positions, exact_edge_scores, sample_edges
from safetyscope.circuits.metric import circuit_metric
from safetyscope.circuits.pairs import encode_pairs
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import TINY_FAMILIES

from .conftest import CLEAN, CORRUPT, fresh, linear_head, silent_blocks


def _setup(lm, clean=CLEAN, corrupt=CORRUPT):
    pairs = encode_pairs(lm, clean, corrupt, chat=False)
    return pairs, circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_eap_equals_exact_on_edges_into_linear_logits(family, tiny_root):
    """With an identity final norm the logit difference is linear in the logits' input: EAP is exact there."""
    lm = linear_head(fresh(family, tiny_root))
    pairs, met = _setup(lm)
    g = edge_attribution(lm, pairs, met, method="eap")
    into_logits = g.edge_index()[g.edge_index()[:, 1] == len(g.receivers) - 1]
    exact = exact_edge_scores(lm, pairs, met, g, into_logits)
    est = g.edge_scores()[edge_positions(g, into_logits)]
    assert exact.abs().max() > 1e-6
    torch.testing.assert_close(est, exact, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_eap_ig_converges_to_exact_as_steps_grow(family, tiny_root):
    """Only input -> logits carries the corruption; along it EAP-IG is a Riemann sum of the exact change."""
    lm = silent_blocks(fresh(family, tiny_root))
    pairs, met = _setup(lm, CLEAN, ["abc defh", "jkm nopz"])  # the last token differs: input -> logits moves
    edges = sample_edges(edge_attribution(lm, pairs, met, method="eap"), None)
    g = edge_attribution(lm, pairs, met, method="eap")
    exact = exact_edge_scores(lm, pairs, met, g, edges)
    errors = []
    for steps in (1, 4, 16, 32):
        est = edge_attribution(lm, pairs, met, method="eap-ig", steps=steps).edge_scores()
        errors.append(float((est - exact).abs().sum()))
    eap_err = float((g.edge_scores() - exact).abs().sum())
    assert eap_err > 1e-5  # the path is non-linear: plain EAP is off
    # a right Riemann sum: not monotone at the first steps, then O(1/m)
    assert errors[1:] == sorted(errors[1:], reverse=True) and min(errors) == errors[-1], errors
    assert errors[-1] < 0.2 * errors[0]
    act = edge_attribution(lm, pairs, met, method="eap-ig", steps=16, variant="activations").edge_scores()
    assert float((act - exact).abs().sum()) < 0.25 * errors[0]


def test_eap_ig_beats_eap_on_a_random_model(tiny_lms):
    lm = tiny_lms["llama"]
    pairs, met = _setup(lm)
    eap = edge_attribution(lm, pairs, met, method="eap")
    exact = exact_edge_scores(lm, pairs, met, eap, eap.edge_index(), edges_per_pass=64)
    ig = edge_attribution(lm, pairs, met, method="eap-ig", steps=16).edge_scores()
    r_eap = torch.corrcoef(torch.stack([eap.edge_scores(), exact]))[0, 1]
    r_ig = torch.corrcoef(torch.stack([ig, exact]))[0, 1]
    assert r_ig > 0.95 and r_ig > r_eap
    assert eap.meta["passes"] == 1  # one backward pass scored all edges


def test_bad_options_raise(tiny_lms):
    lm = tiny_lms["llama"]
    pairs, met = _setup(lm)
    with pytest.raises(SafetyscopeError, match="eap or eap-ig"):
        edge_attribution(lm, pairs, met, method="magic")
    with pytest.raises(SafetyscopeError, match="ig-steps"):
        edge_attribution(lm, pairs, met, method="eap-ig", steps=0)
    with pytest.raises(SafetyscopeError, match="equal-length"):
        encode_pairs(lm, ["abc"], ["abcd"], chat=False)
