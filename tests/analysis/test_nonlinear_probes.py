import pytest
import torch

from safetyscope.analysis.nonlinear_probes import (
    fit_mlp,
    fit_polynomial,
    mlp_fitter,
    polynomial_fitter,
)
from safetyscope.analysis.probes import probe_layers
from safetyscope.directions import DirectionError


def xor_classes(n=120, d=6, seed=0):
    """Class 1 where x0 * x1 > 0: no linear boundary, an exact degree-2 one."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4 * n, d, generator=g)
    y = x[:, 0] * x[:, 1] > 0
    return x[y][:n], x[~y][:n]


def test_polynomial_and_mlp_read_a_quadratic_concept_the_linear_probe_cannot():
    a, b = xor_classes()
    lin = probe_layers(a, b, seed=0, n_controls=2).layers[0]
    poly = probe_layers(
        a, b, seed=0, n_controls=2, fit=polynomial_fitter(degree=2, rank=2), method="poly2"
    ).layers[0]
    mlp = probe_layers(a, b, seed=0, n_controls=2, fit=mlp_fitter(hidden=16, steps=300), method="mlp").layers[
        0
    ]
    assert lin.accuracy < 0.7
    assert poly.accuracy > 0.85 and poly.selectivity > 0.25
    assert mlp.accuracy > 0.8 and mlp.auc > 0.9 and mlp.selectivity > 0.25
    assert abs(poly.control_accuracy - 0.5) < 0.2


def test_truncation_is_nested_and_order_one_is_the_logistic_probe():
    a, b = xor_classes(n=60)
    x = torch.cat([a, b])
    y = torch.cat([torch.ones(60), torch.zeros(60)])
    p3 = fit_polynomial(x, y, degree=3, rank=2, seed=1)
    p2 = fit_polynomial(x, y, degree=2, rank=2, seed=1)
    assert p3.degree == 3
    assert torch.allclose(p3.decision(x, order=2), p2.decision(x))
    from safetyscope.directions import fit_logistic

    assert torch.allclose(p3.decision(x, order=1), fit_logistic(x, y).decision(x))
    # the quadratic term is a CP form: order-2 part equals sum_r lam_r (u_r . z)^2
    u, lam = p2.factors[0]
    z = (x.double() - p2.centre) / p2.scale
    naive = torch.stack([sum(lam[r] * (u[r] @ row) ** 2 for r in range(2)) for row in z])
    assert torch.allclose(p2.decision(x) - p2.decision(x, order=1), naive)
    with pytest.raises(DirectionError, match="Truncation order"):
        p2.decision(x, order=3)


def test_fits_are_deterministic_and_check_input():
    a, b = xor_classes(n=40)
    x, y = torch.cat([a, b]), torch.cat([torch.ones(40), torch.zeros(40)])
    assert torch.equal(fit_mlp(x, y, steps=20).decision(x), fit_mlp(x, y, steps=20).decision(x))
    with pytest.raises(DirectionError, match="both classes"):
        fit_mlp(x, torch.ones(80))
    with pytest.raises(DirectionError, match="degree"):
        fit_polynomial(x, y, degree=0)
