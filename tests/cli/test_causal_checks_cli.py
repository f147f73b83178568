"""CLI of patch-compare, backup and illusion: --json objects, outputs, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    clean, corrupt = tmp_path / "clean.txt", tmp_path / "corrupt.txt"
    clean.write_text("abc defg\njkm nopq\nrst uvwx\n")
    corrupt.write_text("xbc defg\ntkm nopq\nast uvwx\n")
    return clean, corrupt


def test_patch_compare_json_and_out(gpt2_dir, files, tmp_path):
    clean, corrupt = files
    out = tmp_path / "pc"
    res = runner.invoke(
        app,
        [
            "patch-compare",
            str(gpt2_dir),
            "--clean",
            str(clean),
            "--corrupt",
            str(corrupt),
            "--corruptions",
            "pairs,zero,resample",
            "--layers",
            "0,1",
            "--positions",
            "last",
            "--metric",
            "kl",
            "--raw",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [c["corruption"] for c in data["comparisons"]] == ["pairs", "zero", "resample"]
    assert data["comparisons"][0]["spearman"] == pytest.approx(1.0)
    assert (out / "results.json").is_file() and (out / "spearman.svg").is_file()
    again = runner.invoke(
        app,
        [
            "patch-compare",
            str(gpt2_dir),
            "--clean",
            str(clean),
            "--corruptions",
            "zero",
            "--raw",
            "--out",
            str(out),
        ],
    )
    assert again.exit_code == 2 and "error:" in again.output


def test_backup_and_illusion_json(gpt2_dir, files):
    clean, corrupt = files
    res = runner.invoke(
        app,
        [
            "backup",
            str(gpt2_dir),
            "--prompts",
            str(clean),
            "--metric",
            "logit_diff",
            "--answer",
            "a",
            "--wrong",
            "b",
            "--components",
            "L1.mlp",
            "--raw",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ablated"] == ["L1.mlp"] and "compensated_share" in data and data["control"]["ablated"]
    res = runner.invoke(
        app,
        [
            "illusion",
            str(gpt2_dir),
            "--clean",
            str(clean),
            "--corrupt",
            str(corrupt),
            "--layer",
            "1",
            "--metric",
            "logit_diff",
            "--answer",
            "a",
            "--wrong",
            "b",
            "--raw",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["effects"]) == {"full", "row", "null", "component", "random"}
    bad = runner.invoke(
        app,
        [
            "backup",
            str(gpt2_dir),
            "--prompts",
            str(clean),
            "--components",
            "L99.mlp",
            "--metric",
            "logit_diff",
            "--answer",
            "a",
            "--wrong",
            "b",
            "--raw",
        ],
    )
    assert bad.exit_code == 2 and "error:" in bad.output
