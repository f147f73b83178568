import math

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.analysis.plateau_targets import (
    SAELike,
    bag_latents,
    bag_of_latents,
    build_targets,
    cov_random,
    derangement,
    gaussian_fit,
    latent_frequency,
    norm_matched,
    synthetic_latents,
)
from safetyscope.analysis.plateaus import (
    PlateauResult,
    blowup_and_plateau,
    ks_statistic,
    perturbation_path,
    plateau_study,
)
from safetyscope.errors import SafetyscopeError


class TinySAE:
    """A ReLU SAE built in the test: f = relu(x W_enc + b_enc), x_hat = f W_dec + b_dec."""

    def __init__(self, d: int, d_sae: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.W_dec = torch.randn(d_sae, d, generator=g)
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True)
        self.W_enc = self.W_dec.T.clone()
        self.b_enc = -0.5 * torch.ones(d_sae)
        self.b_dec = torch.zeros(d)

    def encode(self, x):
        return torch.relu(x @ self.W_enc + self.b_enc)

    def decode(self, f):
        return f @ self.W_dec + self.b_dec


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    return load_model(save_tiny("llama", tmp_path_factory.mktemp("llama") / "m"))


def _seqs(n, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [tuple(int(t) for t in torch.randint(3, 97, (length,), generator=g)) for _ in range(n)]


def test_derangement_has_no_fixed_point():
    for n in (2, 3, 10):
        p = derangement(n, torch.Generator().manual_seed(n))
        assert sorted(p.tolist()) == list(range(n)) and (p != torch.arange(n)).all()
    with pytest.raises(SafetyscopeError, match="two"):
        derangement(1, torch.Generator())


def test_gaussian_kinds_match_moments():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(4000, 3, generator=g) @ torch.tensor([[2.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0.5]]) + 5
    s = gaussian_fit(acts, 4000, g)
    assert torch.allclose(s.mean(0), acts.mean(0), atol=0.15)
    assert torch.allclose(torch.cov(s.T), torch.cov(acts.T), atol=0.3)
    m = cov_random(acts, 4000, g)
    assert torch.allclose(m.mean(0), acts.mean(0), atol=0.15)
    assert torch.cov(m.T).trace() == pytest.approx(float(torch.cov(acts.T).trace()), rel=0.1)  # same total variance


def test_norm_matched_and_protocol():
    t, ref = torch.randn(5, 4), torch.randn(5, 4)
    assert torch.allclose(norm_matched(t, ref).norm(dim=-1), ref.norm(dim=-1), atol=1e-5)
    assert isinstance(TinySAE(4, 8), SAELike)


def _cosine_error(sae, f_real, f_new):
    """Mean |cos(real latents i, j) - cos(new latents i, j)| over pairs, latents ordered by activation."""
    w = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)
    errs = []
    for r, n in zip(f_real, f_new, strict=True):
        ra = r.nonzero().flatten()
        ra = ra[torch.argsort(r[ra], descending=True)]
        na = n.nonzero().flatten()
        na = na[torch.argsort(n[na], descending=True)]
        if len(ra) > 1:
            cr, cn = w[ra] @ w[ra].T, w[na] @ w[na].T
            errs.append((cr - cn).abs().sum() / (len(ra) * (len(ra) - 1)))
    return float(torch.stack(errs).mean())


def test_sae_latent_kinds_keep_l0_values_and_cosines():
    d, d_sae = 16, 256
    sae = TinySAE(d, d_sae, seed=3)
    acts = 3 * torch.randn(40, d, generator=torch.Generator().manual_seed(2))
    freq = latent_frequency(sae, acts)
    f = sae.encode(acts).double()
    bag = bag_latents(sae, acts, freq, torch.Generator().manual_seed(0))
    syn = synthetic_latents(sae, acts, freq, torch.Generator().manual_seed(0))
    for new in (bag, syn):
        assert torch.equal((new > 0).sum(-1), (f > 0).sum(-1))  # matched L0
        for r, n in zip(f, new, strict=True):  # activation values kept, latents moved
            assert torch.allclose(r[r > 0].sort().values, n[n > 0].sort().values)
        assert not torch.equal(new > 0, f > 0)
    assert _cosine_error(sae, f, syn) < 0.85 * _cosine_error(sae, f, bag)
    out = bag_of_latents(sae, acts, freq, torch.Generator().manual_seed(0))
    assert torch.allclose(out, (bag @ sae.W_dec.double()).float(), atol=1e-4)


def test_build_targets_kinds_and_errors():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(20, 8, generator=g) + 3
    real = acts[derangement(20, g)]
    for kind in ("real", "gaussian", "cov_random", "random"):
        t = build_targets(kind, acts, real, g)
        assert t.shape == real.shape
        assert torch.allclose(t.norm(dim=-1), real.norm(dim=-1), atol=1e-4)  # the norm control
    with pytest.raises(SafetyscopeError, match="needs an SAE"):
        build_targets("synthetic", acts, real, g)
    with pytest.raises(SafetyscopeError, match="Unknown target kind"):
        build_targets("nope", acts, real, g)
    sae = TinySAE(8, 32)
    t = build_targets("sae_recon", acts, real, g, sae, latent_frequency(sae, acts))
    assert torch.allclose(t.norm(dim=-1), real.norm(dim=-1), atol=1e-4)


def test_perturbation_path_modes():
    a, t = torch.zeros(2, 3), torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    rel = perturbation_path(a, t, 4, "relative")
    assert rel.shape == (2, 5, 3) and torch.allclose(rel[:, -1], t) and torch.allclose(rel[:, 2], t / 2)
    ab = perturbation_path(a, t, 4, "absolute", step_size=0.5)
    assert torch.allclose(ab[:, -1].norm(dim=-1), torch.tensor([2.0, 2.0]))
    with pytest.raises(SafetyscopeError, match="step_size"):
        perturbation_path(a, t, 4, "absolute")
    with pytest.raises(SafetyscopeError, match="mode"):
        perturbation_path(a, t, 4, "sideways")


def test_blowup_plateau_and_ks():
    n = 10
    step = (torch.arange(n + 1) >= 6).double()[None]
    line = torch.linspace(0, 1, n + 1, dtype=torch.float64)[None]
    blow, plat = blowup_and_plateau(torch.cat([step, line]), min_slope=2.0, threshold=0.1)
    assert blow[0] == 6.0 and math.isnan(blow[1])   # a straight line has no blow-up
    assert plat == [6.0, 1.0]
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2, 3], [10, 11, 12]) == 1.0
    assert ks_statistic([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.5)


def test_plateau_study_end_to_end(llama, tmp_path):
    seqs = _seqs(6)
    sae = TinySAE(llama.d_model, 64)
    res = plateau_study(llama, seqs, sae=sae, sae_name="tiny", n_steps=4, seed=0)
    assert res.kinds == ["real", "gaussian", "cov_random", "random", "sae_recon", "bag_of_latents", "synthetic"]
    table = res.table()
    assert table["real"]["ks_plateau_vs_real"] == 0.0 and table["real"]["n"] == 6
    assert all(len(v) == 5 for v in res.median_curve.values())
    assert res.median_curve["real"][0] == pytest.approx(0.0, abs=1e-4)
    assert res.median_curve["real"][-1] == pytest.approx(1.0)
    res.save(tmp_path / "p.json")
    back = PlateauResult.load(tmp_path / "p.json")
    assert back.plateau == res.plateau
    plain = plateau_study(llama, seqs, n_steps=4, mode="absolute", read=Site(2, "resid_post"))
    assert plain.kinds == ["real", "gaussian", "cov_random", "random"] and plain.sae is None
    assert "no --sae" in plain.summary()["note"]
