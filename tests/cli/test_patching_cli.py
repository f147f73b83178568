import json

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    clean, corrupt = tmp_path / "clean.txt", tmp_path / "corrupt.txt"
    clean.write_text("abc defg\njkm nopq\n")
    corrupt.write_text("xyz defg\ntuv nopq\n")
    return clean, corrupt


def _run(gpt2_dir, clean, corrupt, *extra):
    return runner.invoke(app, ["patch", str(gpt2_dir), "--clean", str(clean), "--corrupt", str(corrupt), "--raw",
                               *extra])


def test_patch_json_prints_one_object_with_scores(gpt2_dir, files):
    res = _run(gpt2_dir, *files, "--components", "resid_pre,heads", "--layers", "1", "--positions", "last",
               "--answer", "a", "--wrong", "b", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert isinstance(data["clean_metric"], float) and isinstance(data["corrupted_metric"], float)
    rows = data["scores"]
    assert {r["component"] for r in rows} == {"resid_pre", "heads"}
    assert len(rows) == 1 + 4  # one resid_pre cell, 4 heads of the tiny gpt2
    for r in rows:
        assert set(r) >= {"component", "layer", "position", "head", "value"}
        assert (r["head"] is None) == (r["component"] != "heads")
        assert r["layer"] == 1


def test_patch_writes_results_and_heatmaps_and_refuses_overwrite(gpt2_dir, files, tmp_path):
    from safetyscope.causal import PatchingResult

    out = tmp_path / "out"
    res = _run(gpt2_dir, *files, "--components", "resid_pre,heads", "--out", str(out))
    assert res.exit_code == 0, res.output
    result = PatchingResult.load(out / "results.json")
    assert result.metric == "kl" and result.n_pairs == 2
    assert len(result.grid("resid_pre")) == 3 and len(result.grid("resid_pre")[0]) == len(result.positions)
    svg = (out / "heatmap_heads.svg").read_text()
    assert svg.startswith("<svg") and "L2.H3" in svg and "<script" not in svg
    assert (out / "heatmap_resid_pre.svg").is_file()
    again = _run(gpt2_dir, *files, "--out", str(out))
    assert again.exit_code == 2 and "already exists" in again.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--layers", "5"], "out of range"),
    (["--components", "resid_pre,bogus"], "Unknown component"),
    (["--components", "heads", "--heads", "4"], "Head index [4] out of range"),
    (["--metric", "logit_diff"], "needs both an answer"),
    (["--mode", "sideways"], "Unknown mode"),
])
def test_patch_bad_input_is_one_line_exit_2(gpt2_dir, files, extra, message):
    res = _run(gpt2_dir, *files, *extra)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_patch_unequal_pairs_exit_2(gpt2_dir, files, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("xyz defgh\ntuv nopq\n")
    res = _run(gpt2_dir, files[0], bad)
    assert res.exit_code == 2 and "Pair 0" in res.output and "equal-length" in res.output


def test_patch_help_lists_options():
    res = runner.invoke(app, ["patch", "--help"])
    assert res.exit_code == 0
    for opt in ("--clean", "--corrupt", "--components", "--positions", "--metric", "--mode", "--corruption", "--json"):
        assert opt in res.output
