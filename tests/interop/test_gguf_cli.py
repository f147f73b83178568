"""`edit --as gguf` on the command line: default for GGUF inputs, explicit --as wins, --force, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.directions import Direction, DirectionSet

pytest.importorskip("gguf")
runner = CliRunner()


def _direction(tmp: Path) -> Path:
    v = torch.linspace(-1, 1, 32, dtype=torch.float64)
    d = Direction("diff_means", 2, v / v.norm(), 2.0, 1.5, provenance={"eoi_position": -1}, point="resid_pre")
    return DirectionSet("diff_means", [d], {"model_type": "llama"}).save(tmp / "d.safetensors")


def test_edit_as_gguf_defaults_and_force(tmp_path: Path, bpe_model: Any) -> None:
    import gguf

    lm = bpe_model(tmp_path, "qwen2")
    src = _direction(tmp_path)
    out = tmp_path / "e.gguf"
    args = ["edit", str(lm.path), "--direction", str(src), "--out", str(out)]  # type: ignore[attr-defined]
    res = runner.invoke(app, [*args, "--as", "gguf"])
    assert res.exit_code == 0, res.output
    reader = gguf.GGUFReader(str(out))
    assert reader.get_field("general.architecture").contents() == "qwen2"
    assert '"method": "standard"' in reader.get_field("safetyscope.edit").contents()
    again = runner.invoke(app, [*args, "--as", "gguf"])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, [*args, "--as", "gguf", "--force"]).exit_code == 0
    # a GGUF input writes GGUF by default; an explicit --as wins
    res = runner.invoke(app, ["edit", str(out), "--direction", str(src), "--out", str(tmp_path / "e2.gguf")])
    assert res.exit_code == 0, res.output
    assert gguf.GGUFReader(str(tmp_path / "e2.gguf")).get_field("general.architecture").contents() == "qwen2"
    res = runner.invoke(
        app, ["edit", str(out), "--direction", str(src), "--out", str(tmp_path / "hf"), "--as", "hf"]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "hf" / "config.json").is_file()
    # an HF input without --as still writes an HF directory
    res = runner.invoke(app, [*args[:-1], str(tmp_path / "hf2")])
    assert res.exit_code == 0 and (tmp_path / "hf2" / "config.json").is_file()


def test_edit_as_gguf_refuses_word_level_tokenizer(tmp_path: Path) -> None:
    from safetyscope.model.tiny import save_tiny

    model = save_tiny("llama", tmp_path / "m")
    res = runner.invoke(
        app,
        [
            "edit",
            str(model),
            "--direction",
            str(_direction(tmp_path)),
            "--out",
            str(tmp_path / "x.gguf"),
            "--as",
            "gguf",
        ],
    )
    assert res.exit_code == 2 and "error:" in res.output and "WordLevel" in res.output
    assert not (tmp_path / "x.gguf").exists()
    bad = runner.invoke(
        app,
        [
            "edit",
            str(model),
            "--direction",
            str(_direction(tmp_path)),
            "--out",
            str(tmp_path / "y.gguf"),
            "--as",
            "gguf",
            "--gguf-dtype",
            "q4_0",
        ],
    )
    assert bad.exit_code == 2 and "llama.cpp" in bad.output
