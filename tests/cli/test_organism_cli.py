"""CLI tests for `safetyscope organism build|card` and organism specs (tiny settings, seconds)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_build_variant_with_checkpoints_json(tmp_path):
    out = tmp_path / "org"
    args = ["organism", "build", "--steps", "4", "--n-train", "64", "--n-eval", "4", "--checkpoints", "2",
            "--arch", "qwen2", "--behaviours", "none", "--out", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["path"] == str(out) and card["spec"] == "organism:tiny:0:arch=qwen2:behaviours=none"
    assert card["arch"] == "qwen2" and card["behaviours"] == [] and card["train_config"]["steps"] == 4
    assert [c["step"] for c in card["checkpoints"]] == [1, 4]
    assert (out / "checkpoints" / "step-4" / "config.json").is_file()
    info = runner.invoke(app, ["info", str(out / "checkpoints" / "step-1"), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["family"] == "qwen2"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output


def test_bad_options_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["organism", "build", "--behaviours", "lying", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Unknown behaviours" in result.output
    result = runner.invoke(app, ["organism", "build", "--arch", "mamba", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "Unknown organism architecture 'mamba'" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    result = runner.invoke(app, ["organism", "card", "organism:deep:0:colour=red"])
    assert result.exit_code == 2 and "unknown field 'colour'" in result.output
    result = runner.invoke(app, ["info", "organism:deep:7:arch=gpt_neox:init"])
    assert result.exit_code == 2 and "--arch gpt_neox --init-only" in result.output
