"""Latent steering: error term added back, exact edit formulas, matched-frequency control, arms."""

from __future__ import annotations

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import OptionError
from safetyscope.sae import SAEConfig, SparseAutoencoder
from safetyscope.sae.steer import latent_edit, matched_frequency_latents, steer_activations, steering_arms


def _sae(d: int = 8, arch: str = "standard") -> SparseAutoencoder:
    return SparseAutoencoder.random(SAEConfig(arch, d, 24, k=4 if arch == "topk" else None), seed=0)


def test_identity_edit_returns_input_and_clamp_formula():
    sae = _sae()
    x = torch.randn(3, 5, 8)
    assert torch.allclose(steer_activations(sae, x, [2, 7], "scale", 1.0), x, atol=1e-6)
    f = sae.encode(x)
    out = steer_activations(sae, x, [2], "clamp", 4.0)
    expected = x + (4.0 - f[..., 2:3]) * sae.W_dec[2]
    assert torch.allclose(out, expected, atol=1e-5)
    ablated = steer_activations(sae, x, [2, 7], "ablate")
    assert torch.allclose(ablated, x - f[..., 2:3] * sae.W_dec[2] - f[..., 7:8] * sae.W_dec[7], atol=1e-5)
    scaled = steer_activations(sae, x, [7], "scale", 3.0)
    assert torch.allclose(scaled, x + 2.0 * f[..., 7:8] * sae.W_dec[7], atol=1e-5)
    with pytest.raises(OptionError, match="out of range"):
        steer_activations(sae, x, [99], "ablate")
    with pytest.raises(OptionError, match="mode"):
        steer_activations(sae, x, [1], "boost")


def test_latent_edit_hooks_the_site(llama):
    site = Site(1, "resid_post")
    sae = _sae(llama.d_model)
    ids = torch.tensor([[1, 5, 9, 13, 4]])
    clean = llama.model(ids).logits
    with latent_edit(llama, sae, site, [0, 1], "scale", 1.0):
        same = llama.model(ids).logits
    with latent_edit(llama, sae, site, [0, 1], "clamp", 50.0):
        steered = llama.model(ids).logits
    after = llama.model(ids).logits
    assert torch.allclose(same, clean, atol=1e-4)
    assert not torch.allclose(steered, clean, atol=1e-2)
    assert torch.equal(after, clean)  # the hook is gone


def test_matched_frequency_control():
    freq = torch.linspace(0, 1, 100)
    chosen = [10, 50, 90]
    ctrl = matched_frequency_latents(freq, chosen, seed=0, pool=4)
    assert not set(ctrl) & set(chosen) and len(set(ctrl)) == 3
    assert all(abs(float(freq[c]) - float(freq[i])) <= 3 / 99 + 1e-6 for c, i in zip(ctrl, chosen, strict=True))
    assert ctrl == matched_frequency_latents(freq, chosen, seed=0, pool=4)


def test_steering_arms(llama):
    sae = _sae(llama.d_model)
    arms = steering_arms(llama, sae, Site(1, "resid_post"), [1], [2], "ablate")
    assert [a.name for a in arms] == ["baseline", "intervened", "control"] and arms[0].is_baseline
