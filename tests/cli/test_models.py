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


