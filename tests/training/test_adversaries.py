"""PGD adversaries: projection, the identity at δ = 0, attacks that lower the toward loss."""

from __future__ import annotations

import pytest
import torch

from safetyscope.errors import OptionError
from safetyscope.training import Adversary, TrainExample, attack, collate, encode, perturbed, project


def _batch(lm: object) -> object:
    ex = [TrainExample(f"how to do thing number {i}", "No.", True, "Sure, here it is.") for i in range(3)]
    return collate(encode(lm, ex), pad_id=0, use_target=True)  # type: ignore[arg-type]


def test_project_caps_every_token_norm() -> None:
    d = torch.randn(2, 5, 8) * 3
    p = project(d, 0.5)
    assert torch.all(p.norm(dim=-1) <= 0.5 + 1e-6)
    small = torch.randn(2, 5, 8) * 1e-3
    assert torch.allclose(project(small, 0.5), small)


def test_zero_delta_is_identity_and_mask_limits_the_edit(llama: object) -> None:
    b = _batch(llama)
    ids = b.input_ids  # type: ignore[attr-defined]
    with torch.no_grad():
        clean = llama.model(input_ids=ids).logits  # type: ignore[attr-defined]
        with perturbed(
            llama, Adversary("latent", layer=1).site, torch.zeros(3, ids.shape[1], llama.d_model), b.request
        ):  # type: ignore[attr-defined]
            same = llama.model(input_ids=ids).logits  # type: ignore[attr-defined]
        first = int(b.request[0].nonzero()[0])  # type: ignore[attr-defined]
        delta = torch.randn(3, ids.shape[1], llama.d_model)  # type: ignore[attr-defined]
        with perturbed(llama, Adversary("latent", layer=1).site, delta, b.request):  # type: ignore[attr-defined]
            moved = llama.model(input_ids=ids).logits  # type: ignore[attr-defined]
    assert torch.equal(clean, same)
    assert torch.allclose(
        moved[:, :first], clean[:, :first]
    )  # causal: tokens before the request are untouched
    assert not torch.allclose(moved[:, first:], clean[:, first:])


@pytest.mark.parametrize("kind,layer", [("embedding", 0), ("latent", 1)])
def test_attack_lowers_toward_loss_within_budget(llama: object, kind: str, layer: int) -> None:
    b = _batch(llama)
    ids, labels = b.input_ids, b.labels  # type: ignore[attr-defined]
    with torch.no_grad():
        before = float(llama.model(input_ids=ids, labels=labels).loss)  # type: ignore[attr-defined]
    adv = Adversary(kind, epsilon=2.0, steps=8, layer=layer)  # type: ignore[arg-type]
    delta, after = attack(llama, adv, b, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    assert after < before
    assert torch.all(delta.norm(dim=-1) <= 2.0 + 1e-5)
    off = ~b.request[:, : delta.shape[1]]  # type: ignore[attr-defined]
    assert torch.all(delta[off] == 0)
    assert not any(p.grad is not None for p in llama.model.parameters())  # type: ignore[attr-defined]
    delta2, _ = attack(llama, adv, b, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    assert torch.equal(delta, delta2)


def test_bad_adversaries() -> None:
    with pytest.raises(OptionError, match="epsilon > 0"):
        Adversary("latent", epsilon=0.0)
    with pytest.raises(OptionError, match="layer 0"):
        Adversary("embedding", layer=2)
    with pytest.raises(OptionError, match="Unknown adversary"):
        Adversary("nope")  # type: ignore[arg-type]
