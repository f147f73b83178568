import pytest
import torch

from safetyscope.activations import ActivationResult, Site, collect
from safetyscope.errors import SafetyscopeError

PROMPTS = ["one two", "three four five", "six"]


def test_round_trip_rows_and_moments(llama, tmp_path):
    rows = collect(llama, PROMPTS, [Site(0), Site(1, "mlp_out")], "eoi", "none", progress=False)
    back = ActivationResult.load(rows.save(tmp_path / "rows.safetensors"))
    assert back.sites == rows.sites and back.positions == rows.positions and back.reduce == "none"
    assert back.provenance == rows.provenance and back.provenance["model_fingerprint"] == llama.fingerprint()
    for k in rows.rows:
        assert torch.equal(back.rows[k], rows.rows[k])
    assert back.per_prompt(Site(0)).shape[0] == 3
    assert back.stacked().shape == (3, 2, 32)
    mom = collect(llama, PROMPTS, Site(2), "last", "cov", progress=False)
    mback = ActivationResult.load(mom.save(tmp_path / "mom.safetensors"))
    assert torch.allclose(mback.cov(Site(2)), mom.cov(Site(2)))


def test_errors(llama, tmp_path):
    res = collect(llama, PROMPTS, Site(0), "last", "mean", progress=False)
    with pytest.raises(SafetyscopeError, match="was not collected"):
        res.mean(Site(1))
    with pytest.raises(SafetyscopeError, match="reduce='none'"):
        res.per_prompt(Site(0))
    with pytest.raises(SafetyscopeError, match="Covariance"):
        res.cov(Site(0))
    varying = collect(llama, PROMPTS, Site(0), "all", "none", progress=False)
    with pytest.raises(SafetyscopeError, match="different numbers"):
        varying.per_prompt(Site(0))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(SafetyscopeError, match="not written by safetyscope"):
        ActivationResult.load(tmp_path / "foreign.safetensors")
