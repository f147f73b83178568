import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safetyscope.directions import DirectionError, ledoit_wolf_shrinkage, shrunk_covariance


def lw_reference(x):
    """Ledoit-Wolf intensity by the definition, one outer product at a time."""
    n, d = x.shape
    s = x.T @ x / n
    mu = torch.trace(s) / d
    delta2 = ((s - mu * torch.eye(d, dtype=x.dtype)) ** 2).sum()
    beta2 = sum(((torch.outer(r, r) - s) ** 2).sum() for r in x) / n**2
    return float(min(beta2, delta2) / delta2)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 30), d=st.integers(2, 12), seed=st.integers(0, 10_000))
def test_ledoit_wolf_matches_definition(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    alpha = ledoit_wolf_shrinkage(x)
    assert 0.0 <= alpha <= 1.0
    assert alpha == pytest.approx(lw_reference(x), rel=1e-9, abs=1e-12)


def test_shrunk_covariance_is_invertible_when_n_below_d():
    x = torch.randn(8, 50, dtype=torch.float64)
    x = x - x.mean(0)
    cov = shrunk_covariance(x)
    assert 0 < cov.shrinkage <= 1
    v = torch.randn(50, dtype=torch.float64)
    assert torch.allclose(cov.matrix @ cov.solve(v), v, atol=1e-8)
    with pytest.raises(DirectionError, match="singular"):
        shrunk_covariance(x, 0.0).solve(v)


def test_fixed_shrinkage_and_errors():
    x = torch.randn(40, 4, dtype=torch.float64)
    x = x - x.mean(0)
    full = shrunk_covariance(x, 1.0)
    assert torch.allclose(full.matrix, full.target_scale * torch.eye(4, dtype=torch.float64))
    assert torch.allclose(shrunk_covariance(x, 0.0).matrix, x.T @ x / 40)
    for bad, match in ((1.5, r"\[0, 1\]"), ("oas", "Unknown shrinkage")):
        with pytest.raises(DirectionError, match=match):
            shrunk_covariance(x, bad)
    with pytest.raises(DirectionError, match="n >= 2"):
        shrunk_covariance(x[:1])
    with pytest.raises(DirectionError, match="identical"):
        shrunk_covariance(torch.zeros(5, 3, dtype=torch.float64))
