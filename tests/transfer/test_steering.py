"""Trigger steering through a map on the organism: identity map = the target's own steering."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.evaluation.metrics import Rate
from safetyscope.transfer import (
    AffineMap,
    SteeringRates,
    TransferError,
    random_matched,
    transfer_steering,
    trigger_pairs,
)


def test_rates_use_the_right_denominators() -> None:
    # prompts: 0-3 show the backdoor, 4 does not; own steers 0,1,2; mapped steers 0,1 and 3 (not own-steerable)
    flags = {
        "baseline": [True, True, True, True, False],
        "own": [False, False, False, True, False],
        "mapped": [False, False, True, False, False],
        "random": [True, True, True, True, False],
        "mapped_trigger": [True, True, False, True, False],
    }
    r = SteeringRates.from_flags(flags)
    assert r.baseline_backdoor == Rate.from_counts(4, 5)
    assert r.own_rate == Rate.from_counts(3, 4)
    assert r.steerable == [0, 1, 2]
    assert r.transfer_rate == Rate.from_counts(2, 3)
    assert r.random_control == Rate.from_counts(0, 3)
    assert r.mapped_trigger_control == Rate.from_counts(1, 3)
    assert r.mapped_rate_backdoor == Rate.from_counts(3, 4)
    assert SteeringRates.from_dict(r.to_dict()) == r


def test_random_matched_keeps_norms_changes_directions() -> None:
    v = [torch.randn(3, 8), torch.randn(2, 8)]
    r = random_matched(v, seed=0)
    for a, b in zip(v, r, strict=True):
        assert torch.allclose(a.norm(dim=-1), b.norm(dim=-1), rtol=1e-5)
        assert (torch.nn.functional.cosine_similarity(a, b, dim=-1).abs() < 0.99).all()
    assert all(torch.equal(a, b) for a, b in zip(r, random_matched(v, seed=0), strict=True))


@pytest.fixture(scope="module")
def organism(organism_dir: Path) -> object:
    from safetyscope import load_model

    return load_model(str(organism_dir))


def _triggered(n: int) -> list[str]:
    from safetyscope.organism.dataset import build_corpus

    return build_corpus(seed=0, n_train=8, n_eval=n).prompts("prod", "eval")[:n]


def test_trigger_pairs_align(organism: object) -> None:
    pairs = trigger_pairs(organism, _triggered(10))  # type: ignore[arg-type]
    assert len(pairs.prod) == 10 and all(len(p) == 3 for p in pairs.positions)  # "|", "prod", "|"
    with pytest.raises(TransferError, match="twin"):
        trigger_pairs(organism, ["no trigger here"])  # type: ignore[arg-type]


def test_identity_map_transfers_exactly_what_the_target_steers(organism: object) -> None:
    from safetyscope.organism.dataset import is_backdoor

    lm = organism
    d = lm.d_model  # type: ignore[attr-defined]
    ident = AffineMap(d, d)
    with torch.no_grad():
        ident.linear.weight.copy_(torch.eye(d))
        ident.linear.bias.zero_()
    # resid_pre of layer 0 (the embedding) steers the tiny organism: its trigger leaves the trigger tokens in layer 0
    res = transfer_steering(
        lm,
        lm,
        ident,
        0,
        0,
        _triggered(24),
        is_backdoor,
        inverse_fn=ident,  # type: ignore[arg-type]
        max_new_tokens=6,
    )
    fwd: SteeringRates = res["forward"]
    assert fwd.baseline_backdoor.rate is not None and fwd.baseline_backdoor.rate > 0.8
    assert fwd.own_rate.rate is not None and fwd.own_rate.rate > 0.8
    assert (
        fwd.transfer_rate.rate == 1.0
    )  # the identity map patches exactly the target's own |dev| activations
    assert fwd.mapped_trigger_control.rate == 0.0  # patching the trigger's own activations removes nothing
    assert res["inverse"].transfer_rate.rate == 1.0
