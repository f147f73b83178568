import pytest
import torch

from safetyscope.analysis.mahalanobis import MahalanobisMonitor, fit_gaussian
from safetyscope.directions import DirectionError, shrunk_covariance
from safetyscope.errors import SafetyscopeError


def naive(x, rows, shrinkage):
    mu = rows.double().mean(0)
    cov = shrunk_covariance(rows.double() - mu, shrinkage)
    z = x.double() - mu
    return torch.stack([(zi @ cov.solve(zi)).sqrt() for zi in z])


@pytest.mark.parametrize(
    ("n", "d", "shrinkage"), [(12, 30, "ledoit_wolf"), (50, 8, "ledoit_wolf"), (50, 8, 0.0), (10, 20, 0.3)]
)
def test_eigen_form_equals_the_seed_formula(n, d, shrinkage):
    g = torch.Generator().manual_seed(n + d)
    rows = torch.randn(n, d, generator=g) * torch.linspace(0.5, 3, d)
    x = torch.randn(7, d, generator=g)
    gauss = fit_gaussian(rows, shrinkage)
    assert torch.allclose(gauss.distance(x), naive(x, rows, shrinkage), rtol=1e-6)


def test_singular_without_shrinkage_is_an_error():
    with pytest.raises(DirectionError, match="singular"):
        fit_gaussian(torch.randn(5, 10), 0.0)


def test_monitor_round_trips(tmp_path):
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(20, 2, 6, generator=g)
    gs = [fit_gaussian(rows[:, i]) for i in range(2)]
    mon = MahalanobisMonitor([3, 5], gs, [1.0, 2.0], [0.5, 0.25], [5], 0.7, provenance={"model": "m"})
    path, side = mon.save(tmp_path / "m.safetensors")
    assert side.name == "m.json"
    back = MahalanobisMonitor.load(path)
    x = torch.randn(4, 2, 6, generator=g)
    assert torch.allclose(back.score(x), mon.score(x))
    assert back.provenance == {"model": "m"} and back.ensemble == [5]
    # the ensemble of one layer is that layer's z-score
    d = mon.layer_distances(x)
    assert torch.allclose(mon.score(x), (d[:, 1] - 2.0) / 0.25)
    with pytest.raises(SafetyscopeError, match="no layer 4"):
        mon.ensemble_score(d, [4])
    side.unlink()
    with pytest.raises(SafetyscopeError, match="missing"):
        MahalanobisMonitor.load(path)
