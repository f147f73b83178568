"""The training loop: learns, is deterministic for a seed, and resumes bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.errors import OptionError
from safetyscope.training import TrainExample, TrainingConfig, encode, train


def _items(lm: object) -> list:
    ex = [TrainExample(f"how to harm {i}", "I can't help.", True, "Sure.") for i in range(4)]
    ex += [TrainExample(f"how to bake {i}", "Mix flour.", False) for i in range(4)]
    return encode(lm, ex)  # type: ignore[arg-type]


def _fresh(tmp_path: Path, name: str) -> object:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    return load_model(save_tiny("llama", tmp_path / name), dtype="float32")


def _weights(lm: object) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["ssft", "lat"])
def test_training_learns_and_is_deterministic(tmp_path: Path, method: str) -> None:
    a, b = _fresh(tmp_path, "a"), _fresh(tmp_path, "b")
    cfg = TrainingConfig(method=method, steps=6, batch_size=4, lr=3e-3, adv_steps=2, layer=1)
    log_a = train(a, _items(a), cfg, progress=False)  # type: ignore[arg-type]
    log_b = train(b, _items(b), cfg, progress=False)  # type: ignore[arg-type]
    assert log_a.losses == log_b.losses and len(log_a.losses) == 6
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert log_a.losses[-1] < log_a.losses[0]
    assert (len(log_a.adv_losses) == 6) == (method == "lat")


def test_resume_of_same_schedule_is_bit_exact(tmp_path: Path) -> None:
    cfg = TrainingConfig(method="at", steps=4, batch_size=4, adv_steps=2, checkpoint_every=2)
    full = _fresh(tmp_path, "full")
    log_full = train(full, _items(full), cfg, progress=False)  # type: ignore[arg-type]

    class Stop(Exception):
        pass

    ckpt = tmp_path / "ckpt"
    part = _fresh(tmp_path, "part")
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def step_then_stop(self: torch.optim.AdamW, *a: object, **k: object) -> object:
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 3:  # interrupted during step 3, after the step-2 checkpoint
            raise Stop
        return out

    torch.optim.AdamW.step = step_then_stop  # type: ignore[method-assign]
    try:
        with pytest.raises(Stop):
            train(part, _items(part), cfg, checkpoint_dir=ckpt, progress=False)  # type: ignore[arg-type]
    finally:
        torch.optim.AdamW.step = real_step  # type: ignore[method-assign]
    resumed = _fresh(tmp_path, "resumed")
    log = train(resumed, _items(resumed), cfg, checkpoint_dir=ckpt, resume=True, progress=False)  # type: ignore[arg-type]
    assert log.resumed_from == 2
    assert log.losses == log_full.losses
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)


def test_bad_config() -> None:
    with pytest.raises(OptionError, match="--method"):
        TrainingConfig(method="rlhf")
    with pytest.raises(OptionError, match="steps >= 1"):
        TrainingConfig(steps=0)
    assert TrainingConfig(method="lat").adversary(8).layer == 2  # type: ignore[union-attr]
    assert TrainingConfig(method="ssft").adversary(8) is None
