"""Scrubbed loss: the full circuit recovers everything, the empty one nothing; partners are real resamples."""

import pytest
import torch

from safetyscope.causal import PatchingError
from safetyscope.circuits import attribute, resample_pool_partners, scrubbed_loss
from safetyscope.circuits.eap import edge_attribution
from safetyscope.circuits.evaluate import circuit_metrics
from safetyscope.circuits.metric import circuit_metric
from safetyscope.circuits.pairs import Pairs, encode_pairs
from safetyscope.circuits.prune import top_n

CLEAN = ["abc defg", "jkm nopq", "rst uvwx"]
CORRUPT = ["xyz defg", "tuv nopq", "abc uvwx"]


def _setup(lm):
    pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
    return pairs, met, edge_attribution(lm, pairs, met, method="eap")


def test_full_circuit_recovers_one_and_empty_zero(tiny_lms):
    lm = tiny_lms["llama"]
    pairs, met, g = _setup(lm)
    res = scrubbed_loss(lm, pairs, met, g, [g.mask, torch.zeros_like(g.mask), top_n(g, 20)], seed=1)
    assert res.loss_recovered[0] == pytest.approx(1.0, abs=1e-4)
    assert res.loss_recovered[1] == pytest.approx(0.0, abs=1e-6)
    assert abs(res.original - res.random_baseline) > 1e-4
    # the partial circuit equals the circuit run against the resampled partners, scaled
    partners = resample_pool_partners([len(s) for s in pairs.clean + pairs.corrupt], len(pairs), 1)
    pool = pairs.clean + pairs.corrupt
    direct = circuit_metrics(
        lm, Pairs(pairs.clean, [pool[j] for j in partners], pairs.texts), met, g, [top_n(g, 20)]
    )
    expect = (float(direct[0]) - res.random_baseline) / (res.original - res.random_baseline)
    assert res.loss_recovered[2] == pytest.approx(expect, abs=1e-4)


def test_partners_are_other_inputs_of_equal_length():
    lengths = [5, 5, 7, 5, 7, 9, 9]
    p = resample_pool_partners(lengths, 4, seed=0)
    assert all(j != i and lengths[j] == lengths[i] for i, j in enumerate(p))
    assert p == resample_pool_partners(lengths, 4, seed=0)
    with pytest.raises(PatchingError, match="same token length"):
        resample_pool_partners([3, 4], 2, seed=0)


def test_attribute_reports_scrubbed_loss_beside_faithfulness(tiny_lms):
    lm = tiny_lms["llama"]
    res = attribute(
        lm,
        CLEAN,
        CORRUPT,
        method="eap",
        metric="logit_diff",
        answer="a",
        wrong="b",
        top=10,
        random_draws=2,
        chat=False,
        scrub_draws=2,
    )
    c = res.circuit
    assert c["scrub_draws"] == 2 and c["scrubbed_loss_recovered"] is not None and "sufficiency" in c
    off = attribute(
        lm,
        CLEAN,
        CORRUPT,
        method="eap",
        metric="logit_diff",
        answer="a",
        wrong="b",
        top=10,
        random_draws=2,
        chat=False,
        scrub_draws=0,
    )
    assert "scrubbed_loss_recovered" not in off.circuit
