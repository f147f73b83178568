"""SAELens format: round trip, hook-name mapping, malformed folders, and parity with the real sae-lens."""

from __future__ import annotations

import json

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import ConfigError, OutputExistsError, SafetyscopeError
from safetyscope.sae import SAEConfig, SparseAutoencoder
from safetyscope.sae.saelens import hook_name_for, load_sae, save_sae, site_from_hook_name

ARCHS = [("standard", None), ("topk", 4), ("jumprelu", None)]


def _random_sae(arch: str, k: int | None, norm: str = "none") -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(arch, 8, 24, k=k, site="L1.resid_post", normalize_activations=norm))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        if sae.threshold is not None:
            sae.threshold.copy_(torch.rand(24, generator=gen) * 0.3)
    return sae


@pytest.mark.parametrize(("arch", "k"), ARCHS)
def test_round_trip_identical(tmp_path, arch: str, k: int | None) -> None:
    sae = _random_sae(arch, k)
    save_sae(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["d_in"] == 8 and cfg["d_sae"] == 24
    assert cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post"
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    assert ("k" in cfg) == (arch == "topk")
    back = load_sae(tmp_path / "sae")
    x = torch.randn(16, 8)
    assert torch.equal(back.encode(x), sae.encode(x))
    assert torch.equal(back(x), sae(x))
    assert back.cfg.site == "L1.resid_post"


def test_topk_keeps_k_and_jumprelu_thresholds() -> None:
    x = torch.randn(32, 8)
    assert int((_random_sae("topk", 4).encode(x) > 0).sum(-1).max()) <= 4
    jr = _random_sae("jumprelu", None)
    f, pre = jr.encode(x), jr.pre_acts(x)
    assert torch.equal(f > 0, (pre > jr.threshold) & (pre > 0))


def test_constant_norm_rescale_is_scale_invariant() -> None:
    sae = _random_sae("standard", None, norm="constant_norm_rescale")
    x = torch.randn(5, 8)
    assert torch.allclose(sae.encode(3 * x), sae.encode(x), atol=1e-5)
    assert torch.allclose(sae(3 * x), 3 * sae(x), atol=1e-4)
    with pytest.raises(ConfigError, match="pass the input x"):
        sae.decode(sae.encode(x))


def test_fold_scale_preserves_latents() -> None:
    sae = _random_sae("topk", 4)
    x = torch.randn(10, 8)
    f, recon = sae.encode(x * 2.5), sae(x * 2.5) / 2.5
    sae.fold_scale(2.5)
    assert torch.allclose(sae.encode(x), f, atol=1e-5)
    assert torch.allclose(sae(x), recon, atol=1e-5)


def test_hook_names() -> None:
    for site in (Site(3, "resid_pre"), Site(0, "resid_post"), Site(2, "mlp_out"), Site(1, "attn_out"), Site(4, "attn_z")):
        assert site_from_hook_name(hook_name_for(site)) == site
    assert site_from_hook_name("model.layers.12") == Site(12, "resid_post")
    assert site_from_hook_name("model.layers.5.mlp") == Site(5, "mlp_out")
    assert site_from_hook_name("transformer.h.2") == Site(2, "resid_post")
    with pytest.raises(SafetyscopeError, match="maps to no site"):
        site_from_hook_name("blocks.3.hook_scale")


def test_bad_folders(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not an SAE folder"):
        load_sae(tmp_path)
    sae = _random_sae("topk", 4)
    save_sae(sae, tmp_path / "a")
    with pytest.raises(OutputExistsError):
        save_sae(sae, tmp_path / "a")
    save_sae(sae, tmp_path / "a", force=True)
    cfg = json.loads((tmp_path / "a" / "cfg.json").read_text())
    cfg["architecture"] = "gated"
    (tmp_path / "a" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="gated"):
        load_sae(tmp_path / "a")
    cfg["architecture"], cfg["d_sae"] = "topk", 25
    (tmp_path / "a" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="shape"):
        load_sae(tmp_path / "a")


# ---- parity with the real sae-lens (optional extra; skipped when absent) ----

@pytest.mark.parametrize(("arch", "k"), ARCHS)
def test_saved_by_us_loads_in_saelens(tmp_path, arch: str, k: int | None) -> None:
    sae_lens = pytest.importorskip("sae_lens")
    ours = _random_sae(arch, k)
    save_sae(ours, tmp_path / "s")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "s"))
    x = torch.randn(16, 8)
    assert torch.allclose(theirs.encode(x), ours.encode(x), atol=1e-6)
    assert torch.allclose(theirs.decode(theirs.encode(x)), ours(x), atol=1e-5)


@pytest.mark.parametrize(("arch", "k"), ARCHS)
def test_saved_by_saelens_loads_here(tmp_path, arch: str, k: int | None) -> None:
    sae_lens = pytest.importorskip("sae_lens")
    cfg_cls = {"standard": sae_lens.StandardSAEConfig, "topk": sae_lens.TopKSAEConfig,
               "jumprelu": sae_lens.JumpReLUSAEConfig}[arch]
    kwargs = {"k": k} if k else {}
    theirs = sae_lens.SAE.from_dict(cfg_cls(d_in=8, d_sae=24, **kwargs).to_dict())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.2 if name == "threshold" else torch.randn(p.shape, generator=gen) * 0.3)
    theirs.cfg.metadata.hook_name = "blocks.2.hook_resid_pre"
    theirs.save_model(str(tmp_path / "t"))
    ours = load_sae(tmp_path / "t")
    assert ours.cfg.site == "L2.resid_pre"
    x = torch.randn(16, 8)
    assert torch.allclose(ours.encode(x), theirs.encode(x), atol=1e-6)
    assert torch.allclose(ours(x), theirs.decode(theirs.encode(x)), atol=1e-5)


def test_parse_site_forms() -> None:
    from safetyscope.sae.saelens import parse_site

    assert parse_site("2:resid_post", 4) == Site(2, "resid_post")
    assert parse_site("mid:resid_pre", 4) == Site(2, "resid_pre")
    assert parse_site("-1:mlp_out", 4) == Site(3, "mlp_out")
    assert parse_site("L1.attn_out", 4) == Site(1, "attn_out")
    assert parse_site("blocks.0.hook_resid_pre", 4) == Site(0, "resid_pre")
    with pytest.raises(SafetyscopeError, match="out of range"):
        parse_site("blocks.9.hook_resid_pre", 4)
    with pytest.raises(SafetyscopeError):
        parse_site("2:resid_middle", 4)
