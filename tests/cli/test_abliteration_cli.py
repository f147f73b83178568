import json

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_cosmic_select_writes_a_direction_that_ablate_reads(organism_dir, tmp_path):
    out = tmp_path / "cosmic.safetensors"
    res = runner.invoke(
        app, ["directions", "select", str(organism_dir), "--method", "cosmic", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{") :])
    assert data["method"] == "cosmic" and data["best"]["eligible"]
    from safetyscope.directions import Direction

    d = Direction.load(out)
    assert d.layer == data["best"]["layer"] and d.provenance["selection"] == "cosmic"
    abl = runner.invoke(
        app,
        [
            "ablate",
            str(organism_dir),
            "--direction",
            str(out),
            "--n",
            "8",
            "--max-new-tokens",
            "12",
            "--json",
        ],
    )
    assert abl.exit_code == 0, abl.output
    report = json.loads(abl.output[abl.output.index("{") :])
    assert report["arms"]["intervened"]["refusal"]["harmful"]["rate"] <= 0.25
    assert report["arms"]["control"]["refusal"]["harmful"]["rate"] >= 0.75


def test_edit_gabliteration_and_components(organism_dir, tmp_path):
    out = tmp_path / "gab"
    res = runner.invoke(
        app,
        [
            "edit",
            str(organism_dir),
            "--method",
            "gabliteration",
            "--directions",
            "2",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output[res.output.index("{") :])
    assert plan["k"] == 2 and plan["selected_layers"]
    card = json.loads((out / "safetyscope_edit.json").read_text())
    assert card["method"] == "gabliteration"
    d = tmp_path / "d.safetensors"
    assert runner.invoke(app, ["directions", "select", str(organism_dir), "--out", str(d)]).exit_code == 0
    comp = runner.invoke(
        app,
        [
            "edit",
            str(organism_dir),
            "--direction",
            str(d),
            "--components",
            "a1,m1",
            "--out",
            str(tmp_path / "comp"),
        ],
    )
    assert comp.exit_code == 0, comp.output
    assert json.loads((tmp_path / "comp" / "safetyscope_edit.json").read_text())["components"] == "a1,m1"


def test_edit_errors(organism_dir, tmp_path):
    res = runner.invoke(app, ["edit", str(organism_dir), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "needs --direction" in res.output
    res = runner.invoke(
        app,
        [
            "edit",
            str(organism_dir),
            "--method",
            "gabliteration",
            "--components",
            "a1",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code == 2 and "--components" in res.output
    res = runner.invoke(
        app,
        [
            "directions",
            "select",
            str(organism_dir),
            "--method",
            "magic",
            "--out",
            str(tmp_path / "y.safetensors"),
        ],
    )
    assert res.exit_code == 2 and "causal or cosmic" in res.output
