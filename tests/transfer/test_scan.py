"""Linear CKA against the HSIC formula; R^2 of an exact affine relation; pair proposal rules."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tests.transfer.conftest import PROMPTS

from safetyscope.transfer import LayerPairScan, collect_pairs, linear_cka, propose_pair, ridge_r2, scan_pairs


def _hsic_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, lk = x.double() @ x.double().T, y.double() @ y.double().T
    hsic = lambda a, b: torch.trace(a @ h @ b @ h)  # noqa: E731
    return float(hsic(k, lk) / torch.sqrt(hsic(k, k) * hsic(lk, lk)))


def test_linear_cka_matches_hsic_and_invariances() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 6, generator=g), torch.randn(50, 4, generator=g)
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-6)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert linear_cka(x @ q * 3 + 2, x) == pytest.approx(1.0, rel=1e-6)  # rotation, scale, shift
    assert linear_cka(x, y) < 0.5


def test_ridge_r2_is_one_for_affine_and_low_for_noise() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 5, generator=g)
    w = torch.randn(5, 7, generator=g)
    assert ridge_r2(x[:150], x[:150] @ w + 1, x[150:], x[150:] @ w + 1, ridge=1e-9) == pytest.approx(
        1.0, abs=1e-5
    )
    noise = torch.randn(200, 7, generator=g)
    assert ridge_r2(x[:150], noise[:150], x[150:], noise[150:]) < 0.1


def test_propose_pair_prefers_deepest_steerable_source() -> None:
    r2 = [[0.9, 0.5, 0.2], [0.3, 0.8, 0.4], [0.1, 0.2, 0.95]]
    steer = {"src": {0: 1.0, 1: 0.9, 2: 0.1}, "tgt": {0: 1.0, 1: 0.6, 2: 0.0}}
    (s, t), rule = propose_pair([0, 1, 2], [0, 1, 2], r2, steer, 0.5)
    assert (s, t) == (1, 1) and "steerable" in rule
    (s, t), rule = propose_pair([0, 1, 2], [0, 1, 2], r2, None)
    assert (s, t) == (2, 2) and "best held-out" in rule
    (s, t), _ = propose_pair([0, 1, 2], [0, 1, 2], r2, {"src": {0: 0.0}, "tgt": {}}, 0.5)
    assert (s, t) == (2, 2)  # nothing steerable: fall back to R^2
    (s, t), rule = propose_pair([0, 1, 2], [0, 1, 2], r2, {"src": {}, "tgt": {1: 0.9}}, 0.5)
    assert (s, t) == (1, 1) and "no source layer" in rule  # best R^2 into the steerable target layer


def test_scan_on_two_models_round_trips(two_lms: tuple[Any, Any]) -> None:
    p = collect_pairs(*two_lms, PROMPTS, [0, 1, 2], [0, 1, 2])
    sc = scan_pairs(p, steerability={"src": {1: 0.9}, "tgt": {2: 0.8}})
    assert len(sc.cka) == 3 and len(sc.r2[0]) == 3
    assert all(0 <= v <= 1 + 1e-9 for row in sc.cka for v in row)
    assert sc.proposed == (1, 2)
    assert LayerPairScan.from_dict(sc.to_dict()) == sc
