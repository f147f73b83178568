import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from safetyscope.activations import ActivationResult, Positions, Site
from safetyscope.cli import app
from safetyscope.directions.geometry import GeometryReport
from safetyscope.pipelines.geometry import run_geometry

runner = CliRunner()


def pairs(n=30, layers=3, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    harmless = torch.randn(n, layers, d, generator=g)
    harmful = harmless.clone()
    harmful[..., 0] += 3.0 + 0.1 * torch.randn(n, layers, generator=g)
    return harmful, harmless


def invoke(*args):
    return runner.invoke(app, ["geometry", *map(str, args)])


def test_fp16_pt_layers_json(tmp_path):
    harmful, harmless = pairs()
    torch.save(harmful.half(), tmp_path / "h.pt")
    torch.save(harmless.half(), tmp_path / "s.pt")
    result = invoke("--harmful", tmp_path / "h.pt", "--harmless", tmp_path / "s.pt", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["n"] == 30 and data["d"] == 16 and data["centred"] is False
    assert [x["layer"] for x in data["layers"]] == [0, 1, 2]
    for layer in data["layers"]:
        assert len(layer["explained_variance"]) == 16
        assert layer["top1"] > 0.95 and layer["top1"] <= layer["top2"] <= 1.0
    assert data["provenance"]["harmful"]["dtype"] == "float16"


def test_npy_2d_table_and_out(tmp_path):
    harmful, harmless = pairs(layers=1)
    np.save(tmp_path / "h.npy", harmful[:, 0].numpy())
    np.save(tmp_path / "s.npy", harmless[:, 0].numpy())
    out = tmp_path / "report.json"
    result = invoke("--harmful", tmp_path / "h.npy", "--harmless", tmp_path / "s.npy", "--out", out, "--centred",
                    "--mahalanobis", "--top-k", "3")
    assert result.exit_code == 0, result.output
    assert "top1" in result.output and "top3" in result.output and "mahalanobis" in result.output
    report = GeometryReport.load(out)
    assert report.centred and report.top_k == 3 and report.layers[0].layer is None
    assert report.layers[0].mahalanobis > 0


def test_safetensors_single_and_named(tmp_path):
    harmful, harmless = pairs(layers=2)
    save_file({"acts": harmful}, str(tmp_path / "h.safetensors"))
    save_file({"acts": harmless}, str(tmp_path / "s.safetensors"))
    result = invoke("--harmful", tmp_path / "h.safetensors", "--harmless", tmp_path / "s.safetensors", "--json")
    assert result.exit_code == 0, result.output
    save_file({"acts": harmful, "other": harmful.clone()}, str(tmp_path / "h2.safetensors"))
    save_file({"acts": harmless, "other": harmless.clone()}, str(tmp_path / "s2.safetensors"))
    result = invoke("--harmful", tmp_path / "h2.safetensors", "--harmless", tmp_path / "s2.safetensors")
    assert result.exit_code == 2 and "--key" in result.output
    result = invoke("--harmful", tmp_path / "h2.safetensors", "--harmless", tmp_path / "s2.safetensors",
                    "--key", "acts", "--methods", "diff_means,pca")
    assert result.exit_code == 0, result.output
    assert "cosine between methods" in result.output


def test_reads_safetyscope_collections(tmp_path):
    harmful, harmless = pairs(n=6, layers=2, d=8)
    sites = [Site(2, "resid_post"), Site(5, "resid_post")]
    for name, x in (("h", harmful), ("s", harmless)):
        ActivationResult(sites, Positions.parse("eoi:-1"), "none", 6, rows={s.key: x[:, i] for i, s in enumerate(sites)},
                         prompt_index=torch.arange(6), token_position=torch.full((6,), 3),
                         provenance={"prompt_hash": name}).save(tmp_path / f"{name}.safetensors")
    report = run_geometry(tmp_path / "h.safetensors", tmp_path / "s.safetensors")
    assert [s.layer for s in report.layers] == [2, 5]
    assert report.provenance["harmful"]["collection"]["prompt_hash"] == "h"


@pytest.mark.parametrize(
    ("h_shape", "s_shape", "ext", "match"),
    [
        ((5, 4), (6, 4), ".pt", "paired by index"),
        ((5, 4), (5, 3), ".npy", "Hidden sizes differ"),
        ((5, 2, 4), (5, 3, 4), ".pt", "Layer counts differ"),
        ((5, 2, 2, 4), (5, 2, 2, 4), ".npy", "expected"),
    ],
)
def test_shape_errors_exit_2(tmp_path, h_shape, s_shape, ext, match):
    for name, shape in (("h", h_shape), ("s", s_shape)):
        x = torch.randn(shape)
        if ext == ".pt":
            torch.save(x, tmp_path / f"{name}{ext}")
        else:
            np.save(tmp_path / f"{name}{ext}", x.numpy())
    result = invoke("--harmful", tmp_path / f"h{ext}", "--harmless", tmp_path / f"s{ext}")
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output


def test_file_errors_exit_2(tmp_path):
    torch.save(torch.randn(4, 3), tmp_path / "ok.pt")
    result = invoke("--harmful", tmp_path / "missing.pt", "--harmless", tmp_path / "ok.pt")
    assert result.exit_code == 2 and "No such tensor file" in result.output
    (tmp_path / "x.txt").write_text("1")
    result = invoke("--harmful", tmp_path / "x.txt", "--harmless", tmp_path / "ok.pt")
    assert result.exit_code == 2 and "Unsupported tensor file" in result.output
    nan = torch.randn(4, 3)
    nan[2, 1] = float("nan")
    torch.save(nan, tmp_path / "nan.pt")
    result = invoke("--harmful", tmp_path / "nan.pt", "--harmless", tmp_path / "ok.pt")
    assert result.exit_code == 2 and "NaN" in result.output
    result = invoke("--harmful", tmp_path / "ok.pt", "--harmless", tmp_path / "ok.pt", "--methods", "magic")
    assert result.exit_code == 2 and "Unknown methods" in result.output
