"""The post's four losses against naive per-position loops, with padding masked."""

from __future__ import annotations

import pytest
import torch

from safetyscope.transfer import fvu, lm_kl, masked_cosine, masked_mse


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred, true = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]])
    return pred, true, mask


def test_mse_cosine_fvu_match_naive_loops() -> None:
    pred, true, mask = _data()
    rows = [(pred[b, t].double(), true[b, t].double()) for b in range(3) for t in range(5) if mask[b, t]]
    d = pred.shape[-1]
    mse = sum(((p - y) ** 2).sum() for p, y in rows) / (len(rows) * d)
    cos = sum(float(p @ y / (p.norm() * y.norm())) for p, y in rows) / len(rows)
    ybar = torch.stack([y for _, y in rows]).mean(0)
    fv = sum(((p - y) ** 2).sum() for p, y in rows) / sum(((y - ybar) ** 2).sum() for _, y in rows)
    assert float(masked_mse(pred, true, mask)) == pytest.approx(float(mse), rel=1e-5)
    assert float(masked_cosine(pred, true, mask)) == pytest.approx(cos, rel=1e-5)
    assert float(fvu(pred, true, mask)) == pytest.approx(float(fv), rel=1e-5)


def test_padding_values_do_not_matter() -> None:
    pred, true, mask = _data()
    junk = pred.clone()
    junk[mask == 0] = 1e6
    for f in (masked_mse, masked_cosine, fvu):
        assert float(f(junk, true, mask)) == pytest.approx(float(f(pred, true, mask)), rel=1e-6)


def test_perfect_prediction_and_mean_prediction() -> None:
    _, true, mask = _data()
    assert float(masked_mse(true, true, mask)) == 0.0
    assert float(masked_cosine(true, true, mask)) == pytest.approx(1.0)
    flat = true[mask.bool()]
    mean_pred = flat.mean(0).expand_as(true)
    assert float(fvu(mean_pred, true, mask)) == pytest.approx(
        1.0, rel=1e-5
    )  # predicting the mean explains nothing


def test_lm_kl_matches_definition_and_is_zero_on_equal_logits() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    p, q = a.softmax(-1), b.softmax(-1)
    per = (p * (p.log() - q.log())).sum(-1)
    want = float(per[mask.bool()].mean())
    assert float(lm_kl(a, b, mask)) == pytest.approx(want, rel=1e-5)
    assert float(lm_kl(a, a, mask)) == pytest.approx(0.0, abs=1e-7)


def test_mask_shape_mismatch_is_an_error() -> None:
    pred, true, _ = _data()
    with pytest.raises(ValueError, match="mask shape"):
        masked_mse(pred, true, torch.ones(3, 4))
