"""SGD training: learns, is deterministic, resumes bit-identically, logs the monitored metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.transfer import TrainConfig, TransferError, fit_affine, make_map, train_map
from safetyscope.transfer.train import evaluate


def _data() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 6, generator=g)
    y = x @ torch.randn(6, 8, generator=g) + 0.5 + 0.05 * torch.randn(600, 8, generator=g)
    return x[:500], y[:500], x[500:], y[500:]


def test_sgd_affine_approaches_closed_form_and_logs_metrics() -> None:
    x, y, xv, yv = _data()
    m = make_map("affine", 6, 8)
    calls: list[int] = []
    curve = train_map(
        m,
        x,
        y,
        xv,
        yv,
        TrainConfig(steps=600, lr=0.02, batch_size=128, log_every=200),
        kl_fn=lambda _m: float(len(calls.append(1) or calls)),
    )
    assert [r["step"] for r in curve.rows] == [200, 400, 600]
    assert {"train_mse", "val_mse", "val_cosine", "val_fvu", "val_kl"} <= set(curve.rows[0])
    assert curve.rows[-1]["val_kl"] == 3.0 and curve.tokens_seen == 600 * 128
    closed = evaluate(fit_affine(x, y), xv, yv)["mse"]
    assert curve.rows[-1]["val_mse"] < 1.5 * closed
    assert curve.rows[-1]["val_mse"] < curve.rows[0]["val_mse"] or curve.rows[0]["val_mse"] < 1.5 * closed


def test_autoencoder_learns() -> None:
    x, y, xv, yv = _data()
    m = make_map("autoencoder", 6, 8, hidden=32)
    before = evaluate(m, xv, yv)["fvu"]
    curve = train_map(m, x, y, xv, yv, TrainConfig(steps=400, lr=0.01, batch_size=128, log_every=400))
    assert curve.last()["val_fvu"] < 0.2 < before


def test_deterministic_and_resumable(tmp_path: Path) -> None:
    x, y, xv, yv = _data()
    cfg = TrainConfig(steps=40, lr=0.01, batch_size=32, log_every=10, seed=4)
    ref = make_map("autoencoder", 6, 8, seed=4)
    train_map(ref, x, y, xv, yv, cfg)
    again = make_map("autoencoder", 6, 8, seed=4)
    train_map(again, x, y, xv, yv, cfg)
    assert all(
        torch.equal(a, b) for a, b in zip(ref.state_dict().values(), again.state_dict().values(), strict=True)
    )

    ck = tmp_path / "ck.safetensors"

    def crash(step: int, _total: int) -> None:
        if step == 25:
            raise KeyboardInterrupt

    part = make_map("autoencoder", 6, 8, seed=4)
    with pytest.raises(KeyboardInterrupt):
        train_map(part, x, y, xv, yv, cfg, checkpoint=ck, checkpoint_every=20, progress=crash)
    resumed = make_map("autoencoder", 6, 8, seed=4)
    curve = train_map(resumed, x, y, xv, yv, cfg, checkpoint=ck, checkpoint_every=20)
    assert [r["step"] for r in curve.rows] == [10, 20, 30, 40]
    assert all(
        torch.equal(a, b)
        for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
    with pytest.raises(TransferError, match="other settings"):
        train_map(make_map("autoencoder", 6, 8), x, y, xv, yv, TrainConfig(steps=50), checkpoint=ck)


def test_unpaired_rows_are_an_error() -> None:
    x, y, xv, yv = _data()
    with pytest.raises(TransferError, match="do not pair"):
        train_map(make_map("affine", 6, 8), x, y[:10], xv, yv)
