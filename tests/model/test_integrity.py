import shutil
from fractions import Fraction

import pytest
import torch
from safetensors.torch import save_file

from safetyscope import load_model
from safetyscope.errors import IntegrityError, ModelLoadError
from safetyscope.model.integrity import check_loading_info, unexplained
from safetyscope.model.tiny import save_tiny


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("integrity") / "llama")


def _copy_configs(src, dst):
    dst.mkdir()
    for p in src.glob("*.json"):
        shutil.copy(p, dst)
    return dst


def test_unrelated_weights_are_an_error_naming_the_keys(llama_dir, tmp_path):
    broken = _copy_configs(llama_dir, tmp_path / "broken")
    save_file({"foo": torch.zeros(3)}, str(broken / "model.safetensors"))
    with pytest.raises(IntegrityError, match=r"missing \(they would be random\).*model\.embed_tokens\.weight") as e:
        load_model(broken)
    assert "unexpected" in str(e.value) and "foo" in str(e.value) and "... and" in str(e.value)


def test_one_missing_tensor_is_named(llama_dir, tmp_path):
    from safetensors.torch import load_file

    part = _copy_configs(llama_dir, tmp_path / "part")
    tensors = load_file(str(llama_dir / "model.safetensors"))
    tensors.pop("model.layers.1.mlp.up_proj.weight")
    save_file(tensors, str(part / "model.safetensors"))
    with pytest.raises(IntegrityError, match=r"1 missing .*model\.layers\.1\.mlp\.up_proj\.weight"):
        load_model(part)


def test_intact_model_loads(llama_dir):
    assert load_model(llama_dir).n_layers == 3


def test_pickled_weights_say_convert_never_weights_only_false(llama_dir, tmp_path):
    pickled = _copy_configs(llama_dir, tmp_path / "pickled")
    torch.save({"model.embed_tokens.weight": torch.zeros(2), "payload": Fraction(1, 3)}, pickled / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as e:
        load_model(pickled)
    assert "convert" in str(e.value).lower() and "safetensors" in str(e.value)
    assert "weights_only=False" not in str(e.value)


def test_truncated_safetensors_is_a_clear_error(llama_dir, tmp_path):
    cut = _copy_configs(llama_dir, tmp_path / "cut")
    data = (llama_dir / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut"):
        load_model(cut)


def test_tied_and_ignorable_keys_are_not_reported():
    assert unexplained(["lm_head.weight", "a.b"], {"lm_head.weight"}, []) == ["a.b"]
    assert unexplained([("x.rotary.inv_freq", (1,), (2,))], set(), [r"rotary\.inv_freq"]) == []

    class Fake:
        config = None
    check_loading_info(Fake(), {"missing_keys": [], "unexpected_keys": []}, "src")  # clean report passes


def test_corrupt_cache_entry_says_how_to_recover(llama_dir, isolated_cache):
    from safetyscope.model.integrity import load_failure

    entry = isolated_cache / "organisms" / "tiny-seed9"
    err = load_failure(RuntimeError("Error while deserializing header: incomplete metadata"), str(entry))
    assert "safetyscope cache entry: delete it and rerun" in str(err)
    outside = load_failure(RuntimeError("Error while deserializing header"), str(llama_dir))
    assert "cache entry" not in str(outside) and "download or copy it again" in str(outside)
