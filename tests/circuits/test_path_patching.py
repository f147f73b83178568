"""Path patching: one path equals the exact edge score; every path out of a sender equals node patching."""

import pytest
import torch

from safetyscope.causal import patching_sweep
from safetyscope.circuits import circuit_metric, encode_pairs, exact_edge_scores
from safetyscope.circuits.graph import build_graph
from safetyscope.circuits.path_patching import path_patch, resolve_receivers
from safetyscope.errors import SafetyscopeError

from .conftest import CLEAN, CORRUPT


def _setup(lm):
    return encode_pairs(lm, CLEAN, CORRUPT, chat=False), circuit_metric(
        "logit_diff", lm.tokenizer, answer="a", wrong="b"
    )


def test_single_path_is_the_exact_edge(llama):
    pairs, met = _setup(llama)
    g = build_graph(llama)
    s, r = g.senders.index("a0.h1"), g.receivers.index("m1")
    want = exact_edge_scores(llama, pairs, met, g, torch.tensor([[s, r]]))
    got = path_patch(llama, pairs, met, ["a0.h1"], ["m1"], graph=g)
    assert got.receivers == ("m1",) and got.effect == pytest.approx(float(want[0]), abs=1e-9)


def test_all_paths_of_an_mlp_equal_patching_the_mlp(llama):
    """Patching m0's write into every receiver after it is patching m0's output (noise mode)."""
    pairs, met = _setup(llama)
    got = path_patch(llama, pairs, met, ["m0"], ["all"])
    sweep = patching_sweep(
        llama,
        CLEAN,
        CORRUPT,
        components="mlp_out",
        layers=[0],
        positions="all",
        joint=True,
        metric="logit_diff",
        answer="a",
        wrong="b",
        mode="noise",
        chat=False,
    )
    assert got.effect == pytest.approx(sweep.scores[0].value - sweep.clean_metric, abs=1e-5)
    assert abs(got.effect) > 1e-5


def test_receiver_patterns_and_errors(llama):
    g = build_graph(llama)
    assert len(resolve_receivers(g, ["mlp"])) == llama.n_layers
    assert resolve_receivers(g, ["logits", "logits"]) == [len(g.receivers) - 1]
    pairs, met = _setup(llama)
    with pytest.raises(SafetyscopeError, match="Unknown receiver"):
        path_patch(llama, pairs, met, ["a0.h1"], ["nowhere"])
    with pytest.raises(SafetyscopeError, match="Unknown sender"):
        path_patch(llama, pairs, met, ["a9.h1"], ["logits"])
    with pytest.raises(SafetyscopeError, match="No receiver"):
        path_patch(llama, pairs, met, ["a2.h0"], ["m0"])
