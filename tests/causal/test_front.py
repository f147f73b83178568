"""Robustness-front search pieces: Pareto mask, direction interpolation, batched scoring against the naive formula."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.causal.front import (
    FrontError,
    FrontObjective,
    FrontParams,
    KernelParams,
    interpolated_direction,
    open_study,
    pareto_mask,
    run_study,
)
from safetyscope.evaluation.metrics import first_token_kl
from safetyscope.evaluation.refusal_score import refusal_scores

HARMFUL = ["how to make a weapon", "steal a car now", "hack the bank"]
HARMLESS = ["bake some bread", "write a poem", "name three colours"]


def test_pareto_mask_against_brute_force() -> None:
    pts = [(0.5, 0.1), (0.2, 0.3), (0.5, 0.05), (0.6, 0.6), (0.2, 0.3), (0.0, 1.0)]
    assert pareto_mask(pts) == [False, True, True, False, True, True]


def test_interpolation() -> None:
    c = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(interpolated_direction(c, 1.0), torch.tensor([1.0, 0.0]))
    h = interpolated_direction(c, 1.5)
    assert torch.allclose(h, torch.tensor([1.0, 1.0]) / 2**0.5)
    assert torch.allclose(interpolated_direction(c, 2.0), torch.tensor([0.0, 1.0]))
    with pytest.raises(FrontError, match="zero"):
        interpolated_direction(c, 0.5)
    with pytest.raises(FrontError, match="outside"):
        interpolated_direction(c, 2.5)


def test_batched_scores_equal_naive(llama: object) -> None:
    lm = llama
    cands = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    ids = [5, 9, 11]
    obj = FrontObjective(lm, cands, HARMFUL, HARMLESS, ids, "prob", batch_size=8)  # type: ignore[arg-type]
    points = [
        FrontParams(1.3, KernelParams(1.2, 1.0, 0.3, 2.0), KernelParams(0.8, 2.0, 0.0, 1.5)),
        FrontParams(2.0, KernelParams(0.0, 0.0, 0.0, 1.0), KernelParams(1.5, 1.0, 1.0, 3.0)),
    ]
    got = obj.score(points)
    for p, (o, kl, share, prob) in zip(points, got, strict=True):
        with obj.context(p)():
            s = refusal_scores(lm, HARMFUL, ids).double()  # type: ignore[arg-type]
        want_kl = first_token_kl(lm, HARMLESS, intervention=obj.context(p)).mean  # type: ignore[arg-type]
        assert o == pytest.approx(prob) and prob == pytest.approx(float(torch.sigmoid(s).mean()), abs=1e-5)
        assert share == pytest.approx(float((s > 0).double().mean()))
        assert kl == pytest.approx(want_kl, abs=1e-5)
    assert got[0][1] > 0


def test_study_resumes_and_refuses_other_setup(tmp_path: Path, llama: object) -> None:
    cands = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    obj = FrontObjective(llama, cands, HARMFUL, HARMLESS, [5, 9], batch_size=8)  # type: ignore[arg-type]
    setup = {"model": "tiny", "seed": 0}
    study = open_study(tmp_path / "s.journal", "f", "tpe", 0, setup, n_startup=2)
    first = run_study(study, obj, 3, batch=2, progress=False)
    assert len(first) == 3
    again = open_study(tmp_path / "s.journal", "f", "nsga2", 0, setup, n_startup=2)
    more = run_study(again, obj, 5, progress=False)
    assert [t.number for t in more][:3] == [t.number for t in first] and len(more) == 5
    front = [t for t in more if t.on_front]
    assert front and all(
        not (o.refusal <= t.refusal and o.kl <= t.kl and (o.refusal < t.refusal or o.kl < t.kl))
        for t in front
        for o in more
    )
    with pytest.raises(FrontError, match="another setup"):
        open_study(tmp_path / "s.journal", "f", "tpe", 0, {"model": "other", "seed": 0}, n_startup=2)
