"""`directions convert` and `edit --as lora` on the command line: one error line, exit 2, on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.directions import Direction, DirectionSet

runner = CliRunner()


def _file(tmp: Path) -> Path:
    v = torch.linspace(-1, 1, 32, dtype=torch.float64)
    d = Direction("diff_means", 2, v / v.norm(), 2.0, 1.5, provenance={"eoi_position": -1}, point="resid_pre")
    return DirectionSet("diff_means", [d], {"model_type": "llama"}).save(tmp / "d.safetensors")


def test_convert_json_and_refusal(tmp_path: Path) -> None:
    src = _file(tmp_path)
    res = runner.invoke(
        app, ["directions", "convert", str(src), str(tmp_path / "v.gguf"), "--to", "llamacpp", "--json"]
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["source_format"] == "safetyscope" and rec["sites"] == ["L2.resid_pre"]
    assert rec["roundtrip_max_rel"] < 1e-6
    again = runner.invoke(
        app, ["directions", "convert", str(src), str(tmp_path / "v.gguf"), "--to", "llamacpp"]
    )
    assert again.exit_code == 2 and "--force" in again.output
    bad = runner.invoke(app, ["directions", "convert", str(src), str(tmp_path / "v.bin")])
    assert bad.exit_code == 2 and "--to" in bad.output


def test_edit_as_lora_refuses_norm_preserving(tmp_path: Path) -> None:
    from safetyscope.model.tiny import save_tiny

    model = save_tiny("llama", tmp_path / "m")
    src = _file(tmp_path)
    res = runner.invoke(
        app,
        [
            "edit",
            str(model),
            "--direction",
            str(src),
            "--out",
            str(tmp_path / "l"),
            "--method",
            "biprojected",
            "--as",
            "lora",
        ],
    )
    assert res.exit_code == 2 and "low-rank" in res.output
    ok = runner.invoke(
        app, ["edit", str(model), "--direction", str(src), "--out", str(tmp_path / "l"), "--as", "lora"]
    )
    assert ok.exit_code == 0, ok.output
    cfg = json.loads((tmp_path / "l" / "adapter_config.json").read_text())
    assert cfg["r"] == 1 and cfg["peft_type"] == "LORA" and len(cfg["target_modules"]) == 1 + 2 * 3
