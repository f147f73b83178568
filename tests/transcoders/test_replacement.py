"""The replacement model: error nodes make it exact, freezing leaves values unchanged, the uncorrected one differs."""

from __future__ import annotations

import pytest
import torch
from tests.transcoders.helpers import random_transcoders

from safetyscope.errors import UnknownArchitectureError
from safetyscope.transcoders import frozen_replay, local_replacement, qk_projections, replace_mlps

FAMILIES = ["llama", "qwen2", "gemma3_text", "olmo2"]
IDS = [[1, 5, 17, 42, 8, 23, 3]]


@pytest.mark.parametrize("family", FAMILIES)
def test_error_nodes_make_the_local_replacement_exact(tiny_lms, family):
    lm = tiny_lms[family]
    tcs = random_transcoders(lm, k=4, layers=[0, 2])  # layer 1 stays unreplaced: all error
    x = torch.tensor(IDS)
    with torch.no_grad():
        clean = lm.model(input_ids=x).logits
        with replace_mlps(lm, tcs):
            uncorrected = lm.model(input_ids=x).logits
    with local_replacement(lm, tcs) as tr:
        exact = lm.model(input_ids=x).logits
    assert torch.allclose(exact, clean, atol=1e-5)
    assert (uncorrected - clean).abs().max() > 1e-3  # random transcoders are far from the MLPs
    assert set(tr.acts) == {0, 2} and set(tr.errors) == {0, 1, 2}
    assert tr.embed is not None and tr.embed.requires_grad
    with torch.no_grad(), frozen_replay(lm, tr):
        replay = lm.model(input_ids=x).logits
    assert torch.allclose(replay, clean, atol=1e-5)
    # hooks are gone: the model is unchanged afterwards
    with torch.no_grad():
        assert torch.equal(lm.model(input_ids=x).logits, clean)


def test_frozen_model_is_linear(llama):
    """In the frozen replay, scaling a perturbation scales the change of the logits (no softmax/norm curvature)."""
    tcs = random_transcoders(llama, k=4)
    x = torch.tensor(IDS)
    with local_replacement(llama, tcs) as tr:
        llama.model(input_ids=x)
    d = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(0))

    def run(scale):
        def perturb(layer, y):
            y = y.clone()
            if layer == 0:
                y[0, 2] += scale * d
            return y

        with torch.no_grad(), frozen_replay(llama, tr, perturb):
            return llama.model(input_ids=x).logits[0, -1].double()

    base, one, three = run(0.0), run(1.0), run(3.0)
    assert (one - base).abs().max() > 1e-3
    assert torch.allclose(three - base, 3 * (one - base), atol=1e-4)
    with torch.no_grad():  # while the unfrozen model is not linear

        def live(scale):
            with replace_mlps(llama, {}):
                h = llama.arch.layers[0].register_forward_hook(
                    lambda _m, _a, o: (
                        (o[0] + scale * d * (torch.arange(7) == 2)[None, :, None].float(), *o[1:])
                        if isinstance(o, tuple)
                        else o + scale * d * (torch.arange(7) == 2)[None, :, None].float()
                    )
                )
                try:
                    return llama.model(input_ids=x).logits[0, -1].double()
                finally:
                    h.remove()

        b, o, t = live(0.0), live(1.0), live(3.0)
        assert not torch.allclose(t - b, 3 * (o - b), atol=1e-4)


def test_fused_attention_is_refused(tiny_lms):
    with pytest.raises(UnknownArchitectureError, match="q_proj/k_proj"):
        qk_projections(tiny_lms["gpt2"], 0)
