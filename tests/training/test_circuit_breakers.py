"""Circuit breakers: losses against naive formulas, the schedule, the frozen reference, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import OptionError
from safetyscope.training import (
    FrozenReference,
    TrainExample,
    TrainingConfig,
    circuit_breaker_layers,
    circuit_breaker_loss,
    coefficients,
    encode,
    rerouting_loss,
    retain_loss,
    train,
)
from safetyscope.training.circuit_breakers import states


def _naive_rr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, relu: bool) -> float:
    vals = []
    for i in range(a.shape[0]):
        for t in range(a.shape[1]):
            if mask[i, t]:
                x, y = a[i, t].tolist(), b[i, t].tolist()
                dot = sum(u * v for u, v in zip(x, y, strict=True))
                c = dot / (math.sqrt(sum(u * u for u in x)) * math.sqrt(sum(v * v for v in y)))
                vals.append(max(c, 0.0) if relu else c)
    return sum(vals) / len(vals)


def _naive_retain(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    vals = [
        math.sqrt(sum((u - v) ** 2 for u, v in zip(a[i, t].tolist(), b[i, t].tolist(), strict=True)))
        for i in range(a.shape[0])
        for t in range(a.shape[1])
        if mask[i, t]
    ]
    return sum(vals) / len(vals)


def test_losses_match_naive_formulas() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.4
    mask[0, 0] = True
    for kind, relu in (("relu-cosine", True), ("cosine", False)):
        assert rerouting_loss(a, b, mask, kind).item() == pytest.approx(_naive_rr(a, b, mask, relu), abs=1e-5)
    assert retain_loss(a, b, mask).item() == pytest.approx(_naive_retain(a, b, mask), rel=1e-5)
    # identical states: cosine 1 (nothing rerouted yet), distance 0; masked-out rows never count
    assert rerouting_loss(a, a, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert retain_loss(a, a, mask).item() == 0.0
    b2 = b.clone()
    b2[~mask] = 1e6
    assert retain_loss(a, b2, mask).item() == pytest.approx(retain_loss(a, b, mask).item())
    # ReLU: anti-aligned states cost nothing, the plain cosine keeps pushing (to -1)
    assert rerouting_loss(a, -a, mask, "relu-cosine").item() == 0.0
    assert rerouting_loss(a, -a, mask, "cosine").item() == pytest.approx(-1.0, abs=1e-6)


def test_schedule_and_layers_and_errors() -> None:
    assert coefficients(0, 100, 2.0) == (2.0, 0.0)
    assert coefficients(100, 100, 2.0) == (1.0, 1.0)
    assert coefficients(50, 100, 2.0) == (1.5, 0.5)
    assert coefficients(50, 100, 2.0, retain=10.0) == (1.5, 5.0)
    assert circuit_breaker_layers(3) == [1, 2]
    assert circuit_breaker_layers(32) == [11, 21]
    assert circuit_breaker_layers(8, [5, 3, 5]) == [3, 5]
    with pytest.raises(OptionError, match="--cb-layers"):
        circuit_breaker_layers(3, [0])
    with pytest.raises(OptionError, match="--cb-loss"):
        TrainingConfig(method="circuit-breakers", cb_loss="l2")
    with pytest.raises(OptionError, match="--cb-alpha"):
        TrainingConfig(method="circuit-breakers", cb_alpha=0)
    with pytest.raises(OptionError, match="--cb-retain"):
        TrainingConfig(method="circuit-breakers", cb_retain=-1)
    with pytest.raises(OptionError, match="--cb-loss"):
        rerouting_loss(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool), "l1")


def _items(lm: object) -> list:
    ex = [TrainExample(f"how to harm {i}", "I can't help.", True, "Sure, here it is.") for i in range(4)]
    ex += [TrainExample(f"how to bake {i}", "Mix flour.", False) for i in range(4)]
    return encode(lm, ex)  # type: ignore[arg-type]


def _fresh(tmp_path: Path, name: str) -> object:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    return load_model(save_tiny("llama", tmp_path / name), dtype="float32")


def test_first_loss_is_pure_rerouting_of_identical_models(tmp_path: Path) -> None:
    lm = _fresh(tmp_path, "m")
    ref = FrozenReference(lm)  # type: ignore[arg-type]
    lm.model.requires_grad_(True)  # type: ignore[attr-defined]  # loaded models are frozen
    loss, parts = circuit_breaker_loss(
        lm,  # type: ignore[arg-type]
        ref,
        _items(lm),
        [1],
        kind="relu-cosine",
        coef=(1.0, 0.0),
        pad_id=0,
    )
    assert parts["rerouting"] == pytest.approx(1.0, abs=1e-5) and parts["retain"] == 0.0
    assert loss.item() == pytest.approx(1.0, abs=1e-5) and loss.requires_grad


def test_training_reroutes_harmful_and_keeps_reference_frozen(tmp_path: Path) -> None:
    a, b = _fresh(tmp_path, "a"), _fresh(tmp_path, "b")
    original = {k: v.clone() for k, v in a.model.state_dict().items()}  # type: ignore[attr-defined]
    cfg = TrainingConfig(method="circuit-breakers", steps=8, batch_size=8, lr=3e-3, cb_layers=(1,))
    log = train(a, _items(a), cfg, progress=False)  # type: ignore[arg-type]
    log_b = train(b, _items(b), cfg, progress=False)  # type: ignore[arg-type]
    assert log.losses == log_b.losses  # deterministic for a seed
    rr = log.parts["rerouting"]
    assert len(rr) == 8 and rr[0] == pytest.approx(1.0, abs=1e-5) and rr[-1] < 0.7
    assert log.parts["retain"][0] == 0.0 and log.adv_losses == []
    # the weights moved, the frozen states are still the original model's
    assert any(not torch.equal(original[k], v) for k, v in a.model.state_dict().items())  # type: ignore[attr-defined]
    fresh = _fresh(tmp_path, "c")
    ids = torch.tensor([_items(fresh)[0].prompt])
    ref = FrozenReference(fresh)  # type: ignore[arg-type]
    s = Site(1)
    frozen = ref.states(ids, [s])[s]
    assert torch.allclose(frozen, states(fresh.model, fresh.arch, ids, [s])[s])  # type: ignore[attr-defined]


def test_lora_reference_is_the_model_with_adapters_off(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    lm = _fresh(tmp_path, "lora")
    ids = torch.tensor([_items(lm)[0].prompt])
    s = Site(2)
    before = states(lm.model, lm.arch, ids, [s])[s].detach().clone()  # type: ignore[attr-defined]
    peft.get_peft_model(lm.model, peft.LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))  # type: ignore[attr-defined]
    ref = FrozenReference(lm)  # type: ignore[arg-type]
    assert ref.lora and ref.model is lm.model  # type: ignore[attr-defined]
    n_trainable = sum(p.requires_grad for p in lm.model.parameters())  # type: ignore[attr-defined]
    cfg = TrainingConfig(method="circuit-breakers", steps=4, batch_size=8, lr=1e-2, cb_layers=(2,))
    log = train(lm, _items(lm), cfg, progress=False)  # type: ignore[arg-type]
    assert log.parts["rerouting"][-1] < log.parts["rerouting"][0]
    assert sum(p.requires_grad for p in lm.model.parameters()) == n_trainable  # type: ignore[attr-defined]
    assert torch.allclose(ref.states(ids, [s])[s], before, atol=1e-6)
    assert not torch.allclose(states(lm.model, lm.arch, ids, [s])[s], before, atol=1e-4)  # type: ignore[attr-defined]


def test_circuit_breaker_resume_is_bit_exact(tmp_path: Path) -> None:
    cfg = TrainingConfig(method="circuit-breakers", steps=4, batch_size=4, checkpoint_every=2, cb_layers=(1,))
    full = _fresh(tmp_path, "full")
    log_full = train(full, _items(full), cfg, progress=False)  # type: ignore[arg-type]
    # interrupted after the step-2 checkpoint, then resumed: same losses, parts and weights
    ckpt2 = tmp_path / "ckpt2"
    first = _fresh(tmp_path, "first")
    two = cfg
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    class Stop(Exception):
        pass

    def step_then_stop(self: torch.optim.AdamW, *a: object, **k: object) -> object:
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            raise Stop
        return out

    torch.optim.AdamW.step = step_then_stop  # type: ignore[method-assign]
    try:
        with pytest.raises(Stop):
            train(first, _items(first), two, checkpoint_dir=ckpt2, progress=False)  # type: ignore[arg-type]
    finally:
        torch.optim.AdamW.step = real_step  # type: ignore[method-assign]
    state = torch.load(ckpt2 / "state.pt", weights_only=True)
    assert state["step"] == 2 and set(state["parts"]) == {"rerouting", "retain"}
    resumed = _fresh(tmp_path, "resumed")
    log = train(resumed, _items(resumed), two, checkpoint_dir=ckpt2, resume=True, progress=False)  # type: ignore[arg-type]
    assert log.resumed_from == 2 and log.losses == log_full.losses and log.parts == log_full.parts
    wf, wr = full.model.state_dict(), resumed.model.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
