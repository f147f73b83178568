"""The concept cone on a planted SAE, and the group-steering study's arms on the organism."""

from __future__ import annotations

import pytest
import torch

from safetyscope.errors import OptionError
from safetyscope.sae.concept import concept_cone
from safetyscope.sae.model import SAEConfig, SparseAutoencoder


def _sae(d_sae: int = 12, d_in: int = 6) -> SparseAutoencoder:
    return SparseAutoencoder.random(SAEConfig("standard", d_in, d_sae), seed=0)


def test_one_latent_concept_versus_a_spread_concept():
    sae = _sae()
    g = torch.Generator().manual_seed(0)
    base = torch.rand(40, 12, generator=g) * 0.1
    one = base.clone()
    one[:20, 3] += 5.0  # only latent 3 separates the sets
    cone = concept_cone(sae, one[:20], one[20:], m=4, direction=sae.W_dec[3].detach())
    assert cone.group[0] == 3 and cone.n80 == 1 and cone.top1_share > 0.8
    assert cone.cos_top1 == pytest.approx(1.0, abs=1e-6)
    spread = base.clone()
    spread[:20, :6] += 1.0  # six latents share it equally
    cone = concept_cone(sae, spread[:20], spread[20:], m=6)
    assert set(cone.group) == set(range(6)) and cone.n80 >= 5 and cone.top1_share < 0.3
    assert cone.n_significant >= 6
    assert 1 <= cone.connected <= 6 and 0 <= cone.coherence <= 1


def test_group_vector_recovers_a_direction_built_from_its_latents():
    sae = _sae()
    w = sae.W_dec.detach()
    acts = torch.zeros(40, 12)
    acts[:20, [1, 2, 5]] = torch.tensor([3.0, 2.0, 1.0])
    direction = 3 * w[1] + 2 * w[2] + 1 * w[5]
    cone = concept_cone(sae, acts[:20] + 0.01 * torch.rand(20, 12), acts[20:], m=3, direction=direction)
    assert cone.cos_group == pytest.approx(1.0, abs=1e-3) and cone.cos_top1 < cone.cos_group
    with pytest.raises(OptionError, match="no positive latent"):
        concept_cone(sae, acts[20:], acts[:20], m=3)


def test_group_steering_arms_have_equal_norms(organism_dir):
    from safetyscope import load_model
    from safetyscope.activations import Site
    from safetyscope.pipelines.gsae import group_steering

    lm = load_model(str(organism_dir))
    sae = SparseAutoencoder.random(SAEConfig("standard", lm.d_model, 64), seed=1)
    res = group_steering(lm, sae, Site(1, "resid_post"), m=4, n_test=4, n_train=8, max_new_tokens=3)
    norms = res.summary["vector_norms"]
    assert norms["group"] == pytest.approx(res.alpha, rel=1e-4) == pytest.approx(norms["random"], rel=1e-4)
    assert norms["single"] == pytest.approx(res.alpha, rel=1e-4)
    assert not set(res.random_latents) & set(res.cone.group) and len(res.random_latents) == 4
    assert set(res.summary["induce_rates"]) == {"baseline", "direction", "group", "single", "random"}
    assert res.summary["remove_rates"]["baseline"]["n"] == 4
