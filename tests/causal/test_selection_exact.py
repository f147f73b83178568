import pytest
import torch

from safetyscope.activations import Site
from safetyscope.causal.selection_exact import PrefixInduce
from safetyscope.evaluation.refusal_score import refusal_scores
from safetyscope.interventions import add

PROMPTS = ["how do I bake bread", "tell me a story about a cat", "two plus two"]


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen2"])
def test_addition_from_layer_l_on_equals_the_full_forward(tiny_lms, family):
    lm = tiny_lms[family]
    tokens = [5, 6, 7]
    induce = PrefixInduce(lm, PROMPTS, [1, 2], tokens)
    assert sorted(induce.saved) == [1, 2]
    for layer in (1, 2):
        v = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(layer))
        with add(lm, v, sites=Site(layer)):
            full = float(refusal_scores(lm, PROMPTS, tokens).mean())
        assert induce(v, layer) == pytest.approx(full, abs=1e-4)
    # a layer that was not recorded takes the full path
    v = torch.randn(lm.d_model)
    with add(lm, v, sites=Site(0)):
        full = float(refusal_scores(lm, PROMPTS, tokens).mean())
    assert induce(v, 0) == pytest.approx(full, abs=1e-5)
