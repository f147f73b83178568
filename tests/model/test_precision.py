"""--dtype: auto rules, loading in each precision, the dtype in the fingerprint, chat tiny models."""

import pytest
import torch

from safetyscope import load_model
from safetyscope.errors import ModelLoadError
from safetyscope.model.precision import count_params_local, cpu_supports_bf16, resolve_dtype
from safetyscope.model.tiny import save_tiny


def test_auto_rules():
    big, small = 1_500_000_000, 135_000_000
    assert resolve_dtype("auto", n_params=big, device="cpu", bf16_cpu=True) == torch.bfloat16
    assert resolve_dtype("auto", n_params=big, device="cpu", bf16_cpu=False) == torch.float32
    assert resolve_dtype(None, n_params=small, device="cpu", bf16_cpu=True) == torch.float32
    assert resolve_dtype("auto", n_params=None, device="cpu", bf16_cpu=True) == torch.float32
    assert resolve_dtype("auto", n_params=small, device="cuda:0") == torch.bfloat16
    assert resolve_dtype("bf16", n_params=None, device="cpu") == torch.bfloat16
    assert resolve_dtype(torch.float16, n_params=None, device="cpu") == torch.float16
    with pytest.raises(ModelLoadError, match="Unknown dtype 'bf8'"):
        resolve_dtype("bf8", n_params=None, device="cpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    yes, no = tmp_path / "yes", tmp_path / "no"
    yes.write_text("processor: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n")
    no.write_text("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16x\n")
    assert cpu_supports_bf16(str(yes)) and not cpu_supports_bf16(str(no))
    assert not cpu_supports_bf16(str(tmp_path / "missing"))


@pytest.mark.parametrize("family", ["qwen2", "gemma3_text"])
def test_tiny_chat_models_load_in_each_dtype_with_positions(family, tmp_path):
    path = save_tiny(family, tmp_path / family, chat=True)
    assert count_params_local(path) == sum(p.numel() for p in load_model(path).model.parameters())
    lm32, lm16 = load_model(path), load_model(path, dtype="bfloat16")
    assert lm32.dtype == torch.float32 and lm16.dtype == torch.bfloat16  # auto: tiny -> float32
    assert lm32.fingerprint() != lm16.fingerprint()  # the dtype is part of every cache key
    assert lm32.info()["dtype"] == "float32" and lm16.info()["dtype"] == "bfloat16"
    enc = lm32.chat.encode("Tell the assistant a story")
    eoi = "".join(enc.text[slice(*enc.offsets[i])] for i in enc.eoi_positions)
    expected = {"qwen2": "<|im_end|>\n<|im_start|>assistant\n", "gemma3_text": "<end_of_turn>\n<start_of_turn>model\n"}
    assert eoi == expected[family]
    assert lm32.info()["chat_template"] == ("model" if family == "qwen2" else "gemma-turns")
    assert lm32.kind == ("chat" if family == "qwen2" else "base")
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        h32 = lm32.model(ids, output_hidden_states=True).hidden_states[2][0, -1]
        h16 = lm16.model(ids, output_hidden_states=True).hidden_states[2][0, -1].float()
    assert torch.nn.functional.cosine_similarity(h32, h16, dim=0) > 0.99


def test_gguf_conversion_cache_key_includes_dtype(tmp_path, monkeypatch):
    from safetyscope.model import loading

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(4096))
    seen = []

    def fake_from_pretrained(*a, **kw):
        seen.append(kw["dtype"])
        raise ValueError("stop here")

    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", lambda *a, **kw: None)
    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    for dt in ("float32", "bfloat16"):
        with pytest.raises(ModelLoadError, match="Could not read GGUF"):
            loading.convert_gguf(gguf, dtype=dt)
    assert seen == [torch.float32, torch.bfloat16]
