"""Every consumer of a direction refuses NaN, inf and zero vectors and non-finite scales."""

import math

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import SafetyscopeError
from safetyscope.interventions import ablate, add, affine_edit, cast


def _bad_vectors(d):
    nan = torch.ones(d)
    nan[1] = math.nan
    inf = torch.ones(d)
    inf[0] = -math.inf
    return {"nan": nan, "inf": inf, "zero": torch.zeros(d)}


@pytest.mark.parametrize("kind", ["nan", "inf", "zero"])
def test_add_affine_cast_ablate_refuse_bad_vectors(llama, kind):
    bad = _bad_vectors(llama.d_model)[kind]
    good = torch.ones(llama.d_model)
    before = {k: v.clone() for k, v in llama.model.state_dict().items()}
    site = Site(1, "resid_pre")
    with pytest.raises(SafetyscopeError, match=r"NaN/inf|zero"):
        with add(llama, bad, 1.0, site):
            pass
    with pytest.raises(SafetyscopeError, match=r"NaN/inf|zero"):
        with affine_edit(llama, bad, good, sites=site):
            pass
    with pytest.raises(SafetyscopeError, match=r"NaN/inf|zero"):
        with cast(llama, bad, 0.0, good, 1.0, condition_layer=1, behavior_layers=1):
            pass
    if kind != "zero":  # a zero behaviour vector records CAST decisions without steering
        with pytest.raises(SafetyscopeError, match="NaN/inf"):
            with cast(llama, good, 0.0, bad, 1.0, condition_layer=1, behavior_layers=1):
                pass
    with pytest.raises(SafetyscopeError, match="finite and non-zero"):
        with ablate(llama, bad):
            pass
    after = llama.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("scale", [math.nan, math.inf])
def test_non_finite_scales_are_refused(llama, scale):
    good = torch.ones(llama.d_model)
    with pytest.raises(SafetyscopeError, match="scale is"):
        with add(llama, good, scale, Site(1, "resid_pre")):
            pass
    with pytest.raises(SafetyscopeError, match="scale is"):
        with cast(llama, good, 0.0, good, scale, condition_layer=1, behavior_layers=1):
            pass


def test_harmless_mean_may_be_zero(llama):
    ids = torch.tensor([[1, 5, 7]])
    with affine_edit(llama, torch.ones(llama.d_model), torch.zeros(llama.d_model), sites=Site(1, "resid_pre")):
        out = llama.model(ids).logits
    assert torch.isfinite(out).all()
