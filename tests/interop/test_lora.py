"""LoRA export of weight orthogonalization: exact against the fully edited model, and removable."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from safetyscope.interop.lora import LoraExportError, orthogonalization_lora, save_lora
from safetyscope.interventions.weights import orthogonalize

peft = pytest.importorskip("peft")
IDS = torch.tensor([[5, 17, 33, 8, 61, 12, 40], [3, 9, 27, 81, 44, 2, 19]])


def _load(path: Path) -> object:
    from safetyscope import load_model

    return load_model(path, dtype="float32")


@pytest.mark.parametrize(("family", "k"), [("llama", 1), ("qwen2", 2)])
def test_adapter_reproduces_edit_and_unloads(tmp_path: Path, family: str, k: int) -> None:
    from transformers import AutoModelForCausalLM

    from safetyscope.model.tiny import save_tiny

    path = save_tiny(family, tmp_path / family)
    lm = _load(path)
    dirs = torch.randn(k, 32, generator=torch.Generator().manual_seed(3)).squeeze(0)
    weights = {0: 1.0, 1: 0.5, 2: 0.0}
    edited = orthogonalize(lm, dirs, layer_weights=weights)  # type: ignore[arg-type]
    adapter = orthogonalization_lora(lm, dirs, layer_weights=weights)  # type: ignore[arg-type]
    assert adapter.rank == k
    out = save_lora(adapter, lm, tmp_path / "lora", {"method": "standard"})  # type: ignore[arg-type]
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        original = base(IDS).logits
    model = peft.PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        got = model(IDS).logits
        want = edited.model(IDS).logits  # type: ignore[attr-defined]
    assert (want - original).abs().max() > 1e-3  # the edit does something
    assert (got - want).abs().max() < 1e-4
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    ref = edited.model.state_dict()  # type: ignore[attr-defined]
    assert max(float((merged[n] - ref[n]).abs().max()) for n in merged) < 1e-5
    plain = model.unload()
    with torch.no_grad():
        assert torch.equal(plain(IDS).logits, original)


def test_norm_preserving_edit_is_refused(tmp_path: Path) -> None:
    from safetyscope.model.tiny import save_tiny

    lm = _load(save_tiny("llama", tmp_path / "m"))
    v = torch.randn(32)
    with pytest.raises(LoraExportError, match="not a low-rank"):
        orthogonalization_lora(lm, v, "biprojected", harmless_mean=torch.randn(32))  # type: ignore[arg-type]
    gpt2 = _load(save_tiny("gpt2", tmp_path / "g"))
    with pytest.raises(LoraExportError, match="Conv1D"):
        orthogonalization_lora(gpt2, v)  # type: ignore[arg-type]
