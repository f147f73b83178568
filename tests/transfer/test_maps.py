"""Affine (closed form, pseudo-inverse), autoencoder, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.transfer import (
    AffineMap,
    AutoencoderMap,
    MapConfig,
    TransferError,
    fit_affine,
    load_map,
    make_map,
    save_map,
)


def _affine_data(n: int = 400, d_in: int = 6, d_out: int = 9, noise: float = 0.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g) * 3 + 1
    w, b = torch.randn(d_out, d_in, generator=g), torch.randn(d_out, generator=g)
    y = x @ w.T + b + noise * torch.randn(n, d_out, generator=g)
    return x, y, w, b


def test_closed_form_recovers_an_exact_affine_map() -> None:
    x, y, w, b = _affine_data()
    m = fit_affine(x, y, ridge=1e-10)
    assert torch.allclose(m.linear.weight, w, atol=1e-4)
    assert torch.allclose(m.linear.bias, b, atol=1e-4)


def test_closed_form_matches_lstsq_with_bias_column() -> None:
    x, y, _, _ = _affine_data(noise=0.5)
    m = fit_affine(x, y, ridge=0.0)
    xa = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    sol = torch.linalg.lstsq(xa, y.double()).solution
    assert torch.allclose(m.linear.weight.double(), sol[:-1].T, atol=1e-4)
    assert torch.allclose(m.linear.bias.double(), sol[-1], atol=1e-4)


def test_ridge_shrinks_the_weights() -> None:
    x, y, _, _ = _affine_data(noise=0.5)
    assert fit_affine(x, y, 10.0).linear.weight.norm() < fit_affine(x, y, 0.0).linear.weight.norm()


def test_pseudo_inverse_undoes_an_injective_map() -> None:
    x, y, _, _ = _affine_data()  # 6 -> 9: injective, so A†(A(x)) = x
    m = fit_affine(x, y, ridge=1e-10)
    inv = m.pseudo_inverse()
    with torch.no_grad():
        assert torch.allclose(inv(m(x)), x, atol=1e-3)
    w_pinv = torch.linalg.pinv(m.linear.weight.double())
    assert torch.allclose(inv.linear.bias.double(), -w_pinv @ m.linear.bias.double(), atol=1e-5)


def test_autoencoder_shape_and_formula() -> None:
    ae = make_map("autoencoder", 5, 7, seed=3)
    assert isinstance(ae, AutoencoderMap) and ae.hidden == 5  # c in R^{d_source}, as in the post
    x = torch.randn(4, 5)
    c = torch.relu(x @ ae.encoder.weight.T + ae.encoder.bias)
    with torch.no_grad():
        assert torch.allclose(ae(x), c @ ae.decoder.weight.T, atol=1e-6)
    assert ae.decoder.bias is None


def test_make_map_is_seeded_and_rejects_unknown_kinds() -> None:
    a, b = make_map("affine", 4, 3, seed=1), make_map("affine", 4, 3, seed=1)
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert not torch.equal(a.linear.weight, make_map("affine", 4, 3, seed=2).linear.weight)
    with pytest.raises(TransferError, match="Unknown map kind"):
        make_map("mlp", 4, 3)


@pytest.mark.parametrize("kind", ["affine", "autoencoder"])
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    m = make_map(kind, 4, 6, seed=5)
    cfg = MapConfig(
        kind,
        4,
        6,
        getattr(m, "hidden", None),
        {"spec": "a", "layer": 1, "point": "resid_pre"},
        {"spec": "b", "layer": 2, "point": "resid_pre"},
        {"method": "sgd"},
    )
    save_map(m, cfg, tmp_path)
    m2, cfg2 = load_map(tmp_path)
    assert cfg2 == cfg
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="holds no map"):
        load_map(tmp_path)
    m = AffineMap(4, 6)
    save_map(m, MapConfig("affine", 4, 5), tmp_path)  # config disagrees with the weights
    with pytest.raises(TransferError, match="does not match"):
        load_map(tmp_path)
