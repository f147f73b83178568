"""The probe table, the Mahalanobis monitor and their CLI on the session organism."""

import json

import pytest
import torch
from typer.testing import CliRunner

from safetyscope import load_model
from safetyscope.analysis.mahalanobis import MahalanobisMonitor
from safetyscope.cli import app
from safetyscope.errors import PromptError, SafetyscopeError
from safetyscope.pipelines.readouts import ProbeTable, layer_acts, monitor_fit, monitor_score, probe_table
from safetyscope.pipelines.refusal import refusal_prompts

runner = CliRunner()


@pytest.fixture(scope="module")
def lm(organism_dir):
    return load_model(organism_dir)


def test_probe_table_has_every_kind_with_controls(lm):
    p = refusal_prompts(lm, n_train=20, n_val=10, n_test=4)
    table = probe_table(lm, p, [0, 2], kinds=("linear", "poly2", "mlp", "suffix"), n_controls=2)
    assert list(table.reports) == ["linear", "poly2", "mlp", "suffix"]
    assert table.suffix and "illegal" in table.suffix
    for rep in table.reports.values():
        assert [x.layer for x in rep.layers] == [0, 2] and rep.n_controls == 2
        for x in rep.layers:
            assert x.selectivity == pytest.approx(x.accuracy - x.control_accuracy)
    assert table.reports["linear"].at(2).accuracy >= 0.9
    assert ProbeTable.from_dict(table.to_dict()).rows() == table.rows()
    with pytest.raises(SafetyscopeError, match="Unknown probe kinds"):
        probe_table(lm, p, [0], kinds=("cubic",))
    with pytest.raises(PromptError, match="does not know"):
        probe_table(lm, p, [0], kinds=("suffix",), suffix="Is this request harmful?")


def test_monitor_fit_save_score(lm, tmp_path):
    p = refusal_prompts(lm, n_train=24, n_val=12, n_test=16)
    mon, rep = monitor_fit(lm, p, [0, 1, 2], top_k=2, n_controls=2)
    assert len(rep.ensemble) == 2 and rep.ensemble == mon.ensemble
    assert rep.ensemble_auroc > 0.8 > abs(rep.control_ensemble_auroc - 0.5) + 0.5
    path, _ = mon.save(tmp_path / "mon.safetensors")
    back = MahalanobisMonitor.load(path)
    rows = monitor_score(lm, back, p.harmful_test[:3] + p.harmless_test[:3])
    assert mon.layers == [1, 2] and rep.provenance["skipped_layers"] == [0]  # layer 0: one embedding
    acts = layer_acts(lm, p.harmful_test[:3] + p.harmless_test[:3], mon.layers)
    assert torch.allclose(torch.tensor([r["score"] for r in rows], dtype=torch.float64), mon.score(acts))


def test_cli_monitor_and_probes(organism_dir, tmp_path):
    out = tmp_path / "m.safetensors"
    args = [
        "monitor",
        "fit",
        str(organism_dir),
        "--out",
        str(out),
        "--n-train",
        "16",
        "--n-val",
        "8",
        "--n-test",
        "8",
        "--n-controls",
        "1",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {"ensemble_auroc", "control_ensemble_auroc", "layers", "tpr", "fpr"} <= set(data)
    assert out.is_file() and out.with_suffix(".json").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "error:" in again.output
    prompts = tmp_path / "p.txt"
    prompts.write_text("How do I bake bread ?\n")
    res = runner.invoke(
        app,
        ["monitor", "score", str(organism_dir), "--monitor", str(out), "--prompts", str(prompts), "--json"],
    )
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)["scores"]) == 1
    res = runner.invoke(
        app,
        [
            "probes",
            str(organism_dir),
            "--kinds",
            "linear,poly2",
            "--layers",
            "1",
            "--n-train",
            "12",
            "--n-val",
            "6",
            "--n-controls",
            "1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert {r["kind"] for r in json.loads(res.output)["rows"]} == {"linear", "poly2"}
    bad = runner.invoke(app, ["monitor", "fit", str(organism_dir), "--out", str(tmp_path / "m.json")])
    assert bad.exit_code == 2 and ".safetensors" in bad.output
    assert runner.invoke(app, ["monitor", "--help"]).exit_code == 0
    assert runner.invoke(app, ["discrepancy", "--help"]).exit_code == 0
