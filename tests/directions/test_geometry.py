import itertools
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safetyscope.directions import DirectionError, extract
from safetyscope.directions.geometry import (
    GeometryReport,
    cosine_matrix,
    geometry,
    layer_cosines,
    mahalanobis_separation,
    method_cosines,
    paired_spectrum,
)


def two_axis_pairs(n=200, d=10, s1=3.0, s2=2.0, seed=0):
    """Paired differences with energy only along e_0 and e_1 (σ² ∝ s1², s2²)."""
    g = torch.Generator().manual_seed(seed)
    harmless = torch.randn(n, d, generator=g, dtype=torch.float64)
    diffs = torch.zeros(n, d, dtype=torch.float64)
    diffs[:, 0] = s1 * torch.sign(torch.randn(n, generator=g, dtype=torch.float64))
    diffs[:, 1] = s2 * torch.sign(torch.randn(n, generator=g, dtype=torch.float64))
    return harmless + diffs, harmless


def test_spectrum_of_planted_plane():
    harmful, harmless = two_axis_pairs()
    spec = paired_spectrum(harmful, harmless)
    total = 9.0 + 4.0
    assert spec.top2 == pytest.approx(1.0)
    # each column has constant magnitude; rows are ±, so the columns are near-orthogonal
    assert spec.top1 == pytest.approx(9.0 / total, abs=0.05)
    assert len(spec.explained_variance) == 10 and len(spec.singular_values) == 10
    assert spec.cumulative_top_k == pytest.approx(1.0)


def test_uncentred_vs_centred():
    g = torch.Generator().manual_seed(3)
    harmless = torch.randn(50, 6, generator=g, dtype=torch.float64)
    harmful = harmless + torch.tensor([5.0, 0, 0, 0, 0, 0], dtype=torch.float64) + 0.1 * torch.randn(50, 6, generator=g, dtype=torch.float64)
    unc = paired_spectrum(harmful, harmless)
    cen = paired_spectrum(harmful, harmless, centred=True)
    assert unc.top1 > 0.99 and unc.cos_mean_diff_top1 == pytest.approx(1.0, abs=1e-3)
    assert cen.top1 < 0.5  # the constant shift is gone; isotropic jitter remains
    assert unc.mean_diff_norm == pytest.approx(cen.mean_diff_norm)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 20), d=st.integers(1, 12), seed=st.integers(0, 1000), centred=st.booleans())
def test_explained_variance_properties(n, d, seed, centred):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    spec = paired_spectrum(a, b, centred=centred)
    ev = spec.explained_variance
    assert len(ev) == min(n, d)
    assert sum(ev) == pytest.approx(1.0)
    assert all(x >= y - 1e-12 for x, y in itertools.pairwise(ev))
    assert spec.top1 <= spec.top2 + 1e-12 <= 1.0 + 1e-9


def test_identical_pairs_are_degenerate_not_nan():
    x = torch.randn(5, 4)
    spec = paired_spectrum(x, x.clone())
    assert spec.top1 is None and spec.top2 is None and spec.explained_variance == [0.0] * 4
    report = geometry(x, x.clone())
    json.loads(report.to_json())  # strict JSON, no NaN


def test_mahalanobis_matches_closed_form_for_known_gaussians():
    g = torch.Generator().manual_seed(0)
    n, d = 20000, 3
    cov_sqrt = torch.tensor([[2.0, 0, 0], [0.5, 1.0, 0], [0, 0, 0.5]], dtype=torch.float64)
    shift = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    a = torch.randn(n, d, generator=g, dtype=torch.float64) @ cov_sqrt.T + shift
    b = torch.randn(n, d, generator=g, dtype=torch.float64) @ cov_sqrt.T
    sigma = cov_sqrt @ cov_sqrt.T
    expected = math.sqrt(float(shift @ torch.linalg.solve(sigma, shift)))
    assert mahalanobis_separation(a, b, shrinkage=0.0) == pytest.approx(expected, rel=0.02)
    assert mahalanobis_separation(a, b) == pytest.approx(expected, rel=0.03)


def test_cosine_matrices():
    cm = cosine_matrix({"x": torch.tensor([1.0, 0.0]), "y": torch.tensor([1.0, 1.0]), "z": torch.tensor([0.0, -2.0])})
    assert cm.get("x", "y") == pytest.approx(math.sqrt(0.5))
    assert cm.get("y", "z") == pytest.approx(-math.sqrt(0.5))
    assert cm.get("z", "z") == pytest.approx(1.0)
    harmful, harmless = two_axis_pairs()
    mc = method_cosines(harmful, harmless, ["diff_means", "pca", "projected"])
    assert mc.labels == ["diff_means", "pca", "projected"]
    dset = extract(torch.stack([harmful, harmful], 1), torch.stack([harmless, harmless], 1), layers=[4, 9])
    lc = layer_cosines(dset)
    assert lc.labels == ["4", "9"] and lc.get("4", "9") == pytest.approx(1.0)


def test_geometry_report_layers_and_json_roundtrip(tmp_path):
    harmful, harmless = two_axis_pairs(n=40)
    h3 = torch.stack([harmful, harmless + 2 * (harmful - harmless)], 1)
    s3 = torch.stack([harmless, harmless], 1)
    report = geometry(h3, s3, layers=[1, 2], top_k=3, mahalanobis=True, methods=["diff_means", "pca"])
    assert [s.layer for s in report.layers] == [1, 2] and report.n == 40 and report.d == 10
    assert report.at(2).top2 == pytest.approx(1.0) and report.at(1).mahalanobis > 0
    assert set(report.method_cosines) == {"1", "2"} and set(report.layer_cosines) == {"diff_means", "pca"}
    back = GeometryReport.load(report.save(tmp_path / "g.json"))
    assert back == report
    data = json.loads(report.to_json())
    assert data["layers"][0]["explained_variance"] and "top1" in data["layers"][0] and data["centred"] is False


def test_geometry_needs_pairs():
    with pytest.raises(DirectionError, match="pairs rows"):
        geometry(torch.randn(5, 3), torch.randn(6, 3))
    with pytest.raises(DirectionError, match="layer labels"):
        geometry(torch.randn(5, 2, 3), torch.randn(5, 2, 3), layers=[1])


def test_organism_spectrum(organism_contrast):
    c = organism_contrast
    report = geometry(c.harmful, c.harmless, layers=c.layers, mahalanobis=True)
    for spec in report.layers:
        print(f"layer {spec.layer}: top1={spec.top1:.3f} top2={spec.top2:.3f} top5={spec.cumulative_top_k:.3f} "
              f"|Δ|={spec.mean_diff_norm:.2f} cos(Δ,v1)={spec.cos_mean_diff_top1:.3f} D_M={spec.mahalanobis:.1f}")
        assert 0 < spec.top1 <= spec.top2 <= 1
    # the organism's refusal is one dominant direction of the paired differences
    assert max(s.top1 for s in report.layers) > 0.5
