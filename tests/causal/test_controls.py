import pytest
import torch

from safetyscope.activations import Site, record
from safetyscope.causal import gaussian_noise, mean_ablation, random_like, shuffled_labels
from safetyscope.interventions import InterventionError


def _read(lm, ids, site):
    got = {}
    with torch.no_grad(), record(lm.arch, [site], lambda s, t: got.__setitem__(s, t.clone()), stop_early=False):
        lm.model(input_ids=ids)
    return got[site]


def test_random_like_keeps_norms_and_is_seeded():
    # v from its own generator: under a global torch.manual_seed(0) set by an earlier test,
    # torch.randn would draw exactly random_like's seed-0 vectors.
    v = torch.randn(3, 16, generator=torch.Generator().manual_seed(123)) * torch.tensor([[1.0], [5.0], [0.1]])
    r = random_like(v, 0)
    assert torch.allclose(r.norm(dim=-1), v.norm(dim=-1), atol=1e-5)
    assert torch.equal(r, random_like(v, 0)) and not torch.equal(r, random_like(v, 1))
    assert abs(float(torch.nn.functional.cosine_similarity(r, v).abs().max())) < 0.9


def test_shuffled_labels_keep_counts():
    y = torch.tensor([1] * 10 + [0] * 30)
    s = shuffled_labels(y, 3)
    assert int(s.sum()) == 10 and not torch.equal(s, y) and torch.equal(s, shuffled_labels(y, 3))


def test_mean_ablation_writes_the_mean_at_its_site(llama):
    ids = torch.randint(3, 97, (2, 5))
    mu = torch.randn(32)
    site = Site(1, "resid_post")
    with mean_ablation(llama, mu, site):
        h = _read(llama, ids, Site(2, "resid_pre"))  # the same tensor as resid_post 1
    assert torch.allclose(h, mu.expand_as(h))
    with mean_ablation(llama, {site: mu}):
        assert torch.allclose(_read(llama, ids, site), mu.expand(2, 5, 32))
    with pytest.raises(InterventionError, match="d_model"), mean_ablation(llama, torch.randn(7), site):
        pass


def test_gaussian_noise_has_the_requested_norm_and_seed(llama):
    ids = torch.randint(3, 97, (2, 5))
    site = Site(1)
    base = _read(llama, ids, site)
    with gaussian_noise(llama, 0.5, site, seed=4):
        a = _read(llama, ids, site)
    with gaussian_noise(llama, 0.5, site, seed=4):
        b = _read(llama, ids, site)
    assert torch.allclose((a - base).norm(dim=-1), torch.full((2, 5), 0.5), atol=1e-5)
    assert torch.equal(a, b)
    with pytest.raises(InterventionError, match=">= 0"), gaussian_noise(llama, -1.0, site):
        pass
