"""The robustness matrix on the session organism: ablation drops refusal, the random control does not."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner


def test_matrix_control_and_spectra(organism_dir: Path) -> None:
    from safetyscope.pipelines.robustness import robustness

    res = robustness(
        [str(organism_dir), str(organism_dir)],
        n_train=24,
        n_val=12,
        n_test=30,
        by_layer=False,
        progress=False,
    )
    base, ctrl = res.baseline[0]["rate"], res.control[0]["rate"]
    assert base >= 0.9
    # same model and direction twice: the four cells are one measurement
    assert res.matrix[0][0] == res.matrix[0][1] == res.matrix[1][0] == res.matrix[1][1]
    assert res.matrix[0][0] < base - 0.3 < ctrl
    lo, hi = res.ci[0][0]  # type: ignore[misc]
    assert lo <= res.matrix[0][0] <= hi  # type: ignore[operator]
    s = res.spectra[0]
    assert 0 < s["top1"] <= s["top2"] <= 1 and s["layer"] == res.directions[0]["layer"]
    ev = s["explained_variance"]
    assert abs(s["top2"] - ev[0] - ev[1]) < 1e-9 and sum(ev) <= 1 + 1e-9 and ev == sorted(ev, reverse=True)


def test_cli_json_keys(organism_dir: Path) -> None:
    from safetyscope.cli import app

    res = CliRunner().invoke(
        app, ["robustness", str(organism_dir), "--n-train", "16", "--n-val", "8", "--n-test", "10", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {"models", "matrix", "ci", "control", "spectra"} <= set(data)
    assert len(data["self_ablation"][0]) == 3 and len(data["matrix"]) == 1
    assert data["self_ablation"][0][0]["rate"] is None  # resid_pre 0 at a template token: no difference
