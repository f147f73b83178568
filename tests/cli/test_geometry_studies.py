import json

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from safetyscope.model.tiny import save_tiny

    return save_tiny("llama", tmp_path_factory.mktemp("llama") / "m")


def test_regions_json_and_figures(llama_dir, tmp_path):
    out = tmp_path / "reg"
    res = runner.invoke(app, ["regions", str(llama_dir), "--n", "3", "--steps", "5", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["n_pairs"] + row["n_dropped"] == 3 and row["pairs"] == "different" and len(row["iqr"]) == 2
    assert {p.name for p in out.iterdir()} == {"results.json", "interpolation.svg", "max_slope.svg"}
    again = runner.invoke(app, ["regions", str(llama_dir), "--n", "3", "--steps", "5", "--out", str(out)])
    assert again.exit_code == 2 and "error:" in again.output  # never overwrite without --force


def test_regions_bad_options(llama_dir):
    res = runner.invoke(app, ["regions", str(llama_dir), "--pairs", "odd"])
    assert res.exit_code == 2 and "--pairs" in res.output
    res = runner.invoke(app, ["regions", str(llama_dir), "--site", "L9.resid_post", "--n", "2"])
    assert res.exit_code == 2 and "out of range" in res.output


def test_plateaus_without_sae_says_so(llama_dir):
    res = runner.invoke(app, ["plateaus", str(llama_dir), "--n", "4", "--steps", "3", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(data["kinds"]) == {"real", "gaussian", "cov_random", "random"}
    assert "no --sae" in data["note"]
    for row in data["kinds"].values():
        assert {"blowup_mean", "blowup_sd", "plateau_mean", "plateau_sd", "ks_vs_real"} <= set(row)
