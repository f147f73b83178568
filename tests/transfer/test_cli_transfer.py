"""``safetyscope transfer fit|eval|scan`` on the session organism (mapped onto itself)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_fit_eval_and_refusals(organism_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "map"
    spec = str(organism_dir)
    res = runner.invoke(
        app,
        [
            "transfer",
            "fit",
            spec,
            spec,
            "--src-layer",
            "1",
            "--tgt-layer",
            "1",
            "--map",
            "affine",
            "--n-prompts",
            "60",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    fit = json.loads(res.stdout)
    assert fit["map"]["kind"] == "affine" and fit["map"]["fit"]["method"] == "closed"
    assert fit["map"]["src"]["fingerprint"] and fit["map"]["src"]["layer"] == 1
    assert fit["final"]["val_fvu"] < 0.01  # a model mapped onto itself: the closed form is ~identity
    assert {p.name for p in out.iterdir()} >= {"map.safetensors", "map.json", "curve.json", "results.json"}

    again = runner.invoke(
        app, ["transfer", "fit", spec, spec, "--src-layer", "1", "--tgt-layer", "1", "--out", str(out)]
    )
    assert again.exit_code == 2 and "already holds a fitted map" in again.output

    res = runner.invoke(
        app, ["transfer", "eval", str(out), "--n-backdoor", "6", "--n-fidelity", "4", "--json"]
    )
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    for key in (
        "transfer_rate",
        "transfer_rate_random_control",
        "target_own_rate",
        "inverse_transfer_rate",
        "fidelity",
        "kl",
    ):
        assert key in ev
    assert set(ev["fidelity"]) >= {"mapped", "mean_ablated"}
    assert ev["kl"]["mapped"] < 0.01 < ev["kl"]["mean_ablated"]
    assert ev["fidelity"]["mapped"]["rouge_l"] > ev["fidelity"]["mean_ablated"]["rouge_l"]
    assert (
        ev["target_own_rate"]["n"] > 0
        and 0.0 <= ev["target_own_rate"]["ci_low"] <= ev["target_own_rate"]["ci_high"]
    )


def test_user_errors_are_one_line(organism_dir: Path, tmp_path: Path) -> None:
    spec = str(organism_dir)
    res = runner.invoke(
        app,
        [
            "transfer",
            "fit",
            spec,
            spec,
            "--src-layer",
            "1",
            "--tgt-layer",
            "1",
            "--map",
            "mlp",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code == 2 and "Unknown map kind" in res.output
    res = runner.invoke(
        app,
        [
            "transfer",
            "fit",
            spec,
            spec,
            "--src-layer",
            "1",
            "--tgt-layer",
            "1",
            "--map",
            "autoencoder",
            "--fit",
            "closed",
            "--out",
            str(tmp_path / "y"),
        ],
    )
    assert res.exit_code == 2 and "closed-form fit exists only" in res.output
    res = runner.invoke(app, ["transfer", "eval", str(tmp_path)])
    assert res.exit_code == 2 and "holds no map" in res.output


def test_scan_json(organism_dir: Path) -> None:
    spec = str(organism_dir)
    res = runner.invoke(
        app, ["transfer", "scan", spec, spec, "--n-prompts", "12", "--n-backdoor", "4", "--json"]
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    n = len(d["scan"]["src_layers"])
    assert len(d["scan"]["r2"]) == n and len(d["scan"]["cka"][0]) == n
    assert all(abs(d["scan"]["cka"][i][i] - 1) < 1e-6 for i in range(n))  # a model against itself
    assert len(d["curves"]["tgt"]["layers"]) == n and "noise_control" in d["curves"]["tgt"]["layers"][0]
    assert tuple(d["scan"]["proposed"]) in {(a, b) for a in range(n) for b in range(n)}


def test_fit_never_writes_into_a_foreign_folder(tmp_path: Path) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    res = runner.invoke(
        app,
        [
            "transfer",
            "fit",
            "organism",
            "organism",
            "--src-layer",
            "1",
            "--tgt-layer",
            "1",
            "--out",
            str(other),
        ],
    )
    assert res.exit_code == 2 and "holds no map or fit checkpoint" in res.output
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
