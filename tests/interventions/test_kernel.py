"""Kernel ablation hooks equal the weight orthogonalization with the same per-layer (attention, MLP) strengths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.interventions.hooks import InterventionError, ablate
from safetyscope.interventions.kernel import kernel_ablate, linear_kernel
from safetyscope.interventions.weights import orthogonalize

IDS = torch.tensor([[5, 17, 33, 8, 61, 12, 40], [3, 9, 27, 81, 44, 2, 19]])


def test_linear_kernel_shape() -> None:
    k = linear_kernel(7, max_weight=1.2, peak=3.0, min_weight=0.2, distance=2.0)
    assert k == pytest.approx({0: 0.0, 1: 0.2, 2: 0.7, 3: 1.2, 4: 0.7, 5: 0.2, 6: 0.0})
    with pytest.raises(InterventionError, match="positive"):
        linear_kernel(3, 1, 1, 0, 0)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3_text"])
def test_hooks_equal_weight_edit(tmp_path: Path, family: str) -> None:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    lm = load_model(save_tiny(family, tmp_path / family), dtype="float32")
    r = torch.randn(32, generator=torch.Generator().manual_seed(1))
    attn = {0: 0.3, 1: 1.4, 2: 0.0}
    mlp = {0: 1.0, 1: 0.0, 2: 0.7}
    edited = orthogonalize(lm, r, layer_weights={i: (attn[i], mlp[i]) for i in range(3)}, embed_weight=0.5)
    with torch.no_grad():
        want = edited.model(IDS).logits
        clean = lm.model(IDS).logits
        with kernel_ablate(lm, r, attn, mlp, embed_weight=0.5):
            got = lm.model(IDS).logits
        assert torch.equal(lm.model(IDS).logits, clean)  # hooks removed
    assert (want - clean).abs().max() > 1e-3
    assert (got - want).abs().max() < 1e-4


def test_full_strength_is_ablation(llama: object) -> None:
    r = torch.randn(32, generator=torch.Generator().manual_seed(2))
    ones = dict.fromkeys(range(3), 1.0)
    with torch.no_grad():
        with ablate(llama, r):  # type: ignore[arg-type]
            want = llama.model(IDS).logits  # type: ignore[attr-defined]
        with kernel_ablate(llama, r, ones, ones, embed_weight=1.0):  # type: ignore[arg-type]
            got = llama.model(IDS).logits  # type: ignore[attr-defined]
    assert (got - want).abs().max() < 1e-5
    with pytest.raises(InterventionError, match="out of range"), kernel_ablate(llama, r, {5: 1.0}, {}):  # type: ignore[arg-type]
        pass
