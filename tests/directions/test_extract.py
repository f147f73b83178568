import math

import pytest
import torch

from safetyscope.activations import ActivationResult, Positions, Site
from safetyscope.directions import METHODS, Direction, DirectionError, DirectionSet, extract, register_method
from safetyscope.directions.covariance import pooled_within, shrunk_covariance
from safetyscope.directions.extract import RawDirection


def planted(n=80, d=16, gap=4.0, seed=0, noise=None):
    """Harmful = harmless + gap along e_0, paired rows; optional anisotropic noise scales."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.ones(d) if noise is None else noise
    base = torch.randn(n, d, generator=g, dtype=torch.float64) * scales + 3.0
    jitter = 0.1 * torch.randn(n, d, generator=g, dtype=torch.float64)
    harmful = base + jitter
    harmful[:, 0] += gap
    return harmful, base


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_recovers_planted_direction(method):
    harmful, harmless = planted()
    d = extract(harmful, harmless, method)
    assert isinstance(d, Direction) and d.method == method and d.layer is None
    assert d.vector.shape == (16,) and d.vector.dtype == torch.float64
    assert d.vector.norm() == pytest.approx(1.0)
    assert d.mean_gap > 0 and d.raw_norm > 0
    assert abs(d.vector[0]) > (0.85 if method == "probe" else 0.9), (method, d.vector)  # a probe of separable data is a margin direction
    assert d.provenance["method"] == method and d.provenance["n_harmful"] == 80


def test_diff_means_is_the_seed_formula():
    harmful, harmless = planted()
    delta = harmful.mean(0) - harmless.mean(0)
    d = extract(harmful, harmless, "diff_means")
    assert torch.allclose(d.vector, delta / delta.norm())
    assert d.raw_norm == pytest.approx(float(delta.norm()))
    assert d.mean_gap == pytest.approx(float(delta.norm()))


def test_pca_interleaved_matches_covariance_eigenvector_and_is_sign_aligned():
    harmful, harmless = planted(gap=-6.0)  # harmful *below* harmless on e_0
    rows = torch.stack([harmful, harmless], 1).reshape(-1, 16)  # interleaved pairs
    rows = rows - rows.mean(0)
    _, vecs = torch.linalg.eigh(rows.T @ rows)
    d = extract(harmful, harmless, "pca")
    assert abs(float(d.vector @ vecs[:, -1])) == pytest.approx(1.0)
    delta = harmful.mean(0) - harmless.mean(0)
    assert float(d.vector @ delta) > 0  # oriented toward harmful
    assert d.raw_norm == pytest.approx(math.sqrt(float(torch.linalg.eigvalsh(rows.T @ rows)[-1]) / rows.shape[0]))


def test_pca_diffs_mode_is_top_singular_vector():
    harmful, harmless = planted()
    _, _, vh = torch.linalg.svd(harmful - harmless, full_matrices=False)
    d = extract(harmful, harmless, "pca", mode="diffs")
    assert abs(float(d.vector @ vh[0])) == pytest.approx(1.0)


def test_whitened_is_shrunk_fisher_direction_and_beats_dim_under_anisotropic_noise():
    d_model = 12
    noise = torch.ones(d_model)
    noise[1] = 20.0  # a "rogue dimension" with huge variance
    g = torch.Generator().manual_seed(1)
    harmless = torch.randn(200, d_model, generator=g, dtype=torch.float64) * noise
    harmful = torch.randn(200, d_model, generator=g, dtype=torch.float64) * noise
    harmful[:, 0] += 1.0
    harmful[:, 1] += 6.0  # large mean shift along the noisy axis: DIM leans on it
    d = extract(harmful, harmless, "whitened", shrinkage=0.1)
    cov = shrunk_covariance(pooled_within(harmful, harmless), 0.1)
    w = cov.solve(harmful.mean(0) - harmless.mean(0))
    assert torch.allclose(d.vector, w / w.norm())
    dim = extract(harmful, harmless, "diff_means")
    assert abs(d.vector[0]) > abs(dim.vector[0])  # whitening down-weights the rogue dimension


def test_whitened_works_when_n_below_d():
    harmful, harmless = planted(n=10, d=64)
    d = extract(harmful, harmless, "whitened")
    assert torch.isfinite(d.vector).all() and abs(d.vector[0]) > 0.5
    assert 0.0 < d.provenance["fit"]["shrinkage"] <= 1.0


def test_projected_is_orthogonal_to_harmless_mean():
    harmful, harmless = planted()
    d = extract(harmful, harmless, "projected")
    assert float(d.vector @ harmless.mean(0)) == pytest.approx(0.0, abs=1e-9)


def test_subspace_returns_orthonormal_basis_spanning_planted_plane():
    g = torch.Generator().manual_seed(2)
    harmless = torch.randn(100, 20, generator=g, dtype=torch.float64)
    coef = torch.randn(100, 2, generator=g, dtype=torch.float64) * torch.tensor([5.0, 3.0]) + torch.tensor([4.0, 0.0])
    harmful = harmless.clone()
    harmful[:, :2] += coef
    d = extract(harmful, harmless, "subspace", k=2)
    assert d.basis is not None and d.basis.shape == (2, 20) and d.rank == 2
    assert torch.allclose(d.basis @ d.basis.T, torch.eye(2, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(d.basis[0], d.vector)
    assert float(d.basis[:, :2].norm()) == pytest.approx(math.sqrt(2), abs=1e-9)  # spans e_0, e_1
    with pytest.raises(DirectionError, match="k=30"):
        extract(harmful, harmless, "subspace", k=30)


def test_probe_direction_points_to_harmful():
    harmful, harmless = planted(n=60)
    d = extract(harmful, harmless, "probe", l2=0.1)
    assert d.vector[0] > 0.9
    assert d.provenance["fit"]["train_accuracy"] >= 0.95


def test_layers_give_a_direction_set():
    harmful, harmless = planted()
    stack_h = torch.stack([harmful, harmful * 2, harmful], 1)
    stack_s = torch.stack([harmless, harmless * 2, harmless], 1)
    dset = extract(stack_h, stack_s, "diff_means", layers=[3, 5, 7])
    assert isinstance(dset, DirectionSet) and dset.layers == [3, 5, 7]
    assert dset.vectors().shape == (3, 16)
    assert dset.at(5).raw_norm == pytest.approx(2 * dset.at(3).raw_norm)
    assert extract(stack_h, stack_s).layers == [0, 1, 2]


def test_accepts_fp16_and_activation_results():
    harmful, harmless = planted(n=6, d=8)
    d16 = extract(harmful.half(), harmless.half(), "diff_means")
    assert d16.provenance["input_dtype"] == "float16" and d16.vector.dtype == torch.float64
    sites = [Site(1, "resid_post"), Site(2, "resid_post")]

    def result(x):
        rows = {s.key: x.float() for s in sites}
        return ActivationResult(sites, Positions.parse("last"), "none", x.shape[0], rows=rows,
                                prompt_index=torch.arange(x.shape[0]), token_position=torch.zeros(x.shape[0], dtype=torch.long),
                                provenance={"prompt_hash": "abc"})

    dset = extract(result(harmful), result(harmless), "diff_means")
    assert dset.layers == [1, 2]
    assert dset.provenance["harmful"]["prompt_hash"] == "abc"


@pytest.mark.parametrize(
    ("harmful", "harmless", "kwargs", "match"),
    [
        (torch.randn(1, 4), torch.randn(5, 4), {}, "at least 2"),
        (torch.randn(5, 4), torch.randn(5, 3), {}, "differ in width"),
        (torch.randn(5, 2, 4), torch.randn(5, 3, 4), {}, r"differ in \[layers, d\]"),
        (torch.randn(5, 4), torch.randn(5, 2, 4), {}, "2-D"),
        (torch.randn(5), torch.randn(5), {}, "expected"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), torch.randn(2, 2), {}, "NaN"),
        (torch.randn(5, 4), torch.randn(5, 4), {"method": "nope"}, "Unknown direction method"),
        (torch.randn(5, 4), torch.randn(5, 4), {"method": "pca", "bogus": 1}, "Bad options"),
        (torch.randn(5, 4), torch.randn(6, 4), {"method": "subspace"}, "pairs rows"),
        (torch.ones(5, 4), torch.ones(5, 4), {}, "zero"),
    ],
)
def test_clear_errors(harmful, harmless, kwargs, match):
    with pytest.raises(DirectionError, match=match):
        extract(harmful, harmless, **kwargs)


def test_register_method():
    @register_method("first_axis_test")
    def _first_axis(a, b):
        return RawDirection(torch.eye(a.shape[1], dtype=a.dtype)[0])

    try:
        harmful, harmless = planted()
        d = extract(harmful, harmless, "first_axis_test")
        assert d.vector[0] == 1.0 and d.mean_gap > 0
    finally:
        METHODS.pop("first_axis_test")


def test_organism_dim_and_pca_agree_at_mid_layers(organism_contrast):
    c = organism_contrast
    dim = extract(c.harmful, c.harmless, "diff_means", layers=c.layers)
    pca = extract(c.harmful, c.harmless, "pca", layers=c.layers)
    mid = c.layers[len(c.layers) // 2]
    assert abs(dim.at(mid).cosine(pca.at(mid))) >= 0.9
    for layer in c.layers:
        print(f"layer {layer}: cos(DIM, PCA) = {dim.at(layer).cosine(pca.at(layer)):.4f}")
