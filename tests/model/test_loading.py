import json

import pytest
import torch

from safetyscope import load_model
from safetyscope.errors import ModelLoadError, UnknownArchitectureError
from safetyscope.model import loading
from safetyscope.model.tiny import TINY_FAMILIES, save_tiny


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {f: save_tiny(f, root / f) for f in TINY_FAMILIES}


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_load_every_family_from_a_local_directory(tiny_dirs, family):
    lm = load_model(tiny_dirs[family])
    info = lm.info()
    assert info["family"] == family
    assert (info["n_layers"], info["d_model"], info["vocab_size"]) == (3, 32, 97)
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert not lm.model.training
    assert all(not p.requires_grad for p in lm.model.parameters())
    assert lm.tokenizer.padding_side == "left" and lm.tokenizer.pad_token is not None


def test_fingerprint_is_stable_and_sees_weight_edits(tiny_dirs):
    a = load_model(tiny_dirs["llama"])
    b = load_model(tiny_dirs["llama"])
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        b.arch.mlp_out(1).weight.mul_(0.5)
    assert a.fingerprint() != b.fingerprint()
    assert load_model(tiny_dirs["qwen2"]).fingerprint() != a.fingerprint()


def test_dtype_override(tiny_dirs):
    assert load_model(tiny_dirs["llama"], dtype="bfloat16").dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        load_model(tiny_dirs["llama"], dtype="float8")


def test_default_dtype_device_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("CPU-only expectation")
    assert loading.default_dtype_device(None, None) == (torch.float32, "cpu")
    assert loading.default_dtype_device(None, "cuda") == (torch.bfloat16, "cuda")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="No such model directory"):
        load_model(str(tmp_path / "nope" / "model"))


def test_directory_without_config_lists_its_files(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"no config.json .*weights.bin"):
        load_model(tmp_path)


def test_malformed_config_and_missing_weights(tmp_path, tiny_dirs):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError):
        load_model(bad)
    noweights = tmp_path / "noweights"
    noweights.mkdir()
    (noweights / "config.json").write_text((tiny_dirs["llama"] / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="Could not load weights"):
        load_model(noweights)


def test_unknown_model_type_fails_loudly(tmp_path, tiny_dirs):
    d = tmp_path / "odd"
    d.mkdir()
    cfg = json.loads((tiny_dirs["llama"] / "config.json").read_text())
    cfg["model_type"] = "definitely_not_a_model"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="definitely_not_a_model"):
        load_model(d)


def test_known_model_type_without_map_lists_candidates(tiny_dirs, monkeypatch):
    monkeypatch.delitem(loading.resolve_architecture.__globals__["ARCHITECTURES"], "llama")
    with pytest.raises(UnknownArchitectureError, match=r"model\.layers"):
        load_model(tiny_dirs["llama"])


def test_offline_hub_id_fails_fast_with_advice(monkeypatch):
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError, match=r"'someorg/some-model'.*local directory"):
        load_model("someorg/some-model")


def test_organism_spec_not_built_suggests_build(monkeypatch, tmp_path):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="safetyscope organism build --size small --seed 3"):
        load_model("organism:small:3")


def test_unpulled_registry_model_suggests_pull(monkeypatch, tmp_path):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="safetyscope models pull smollm2-135m-instruct"):
        load_model("smollm2-135m-instruct")


def test_gguf_missing_and_garbage(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "x.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="Could not read GGUF"):
        load_model(junk)
