"""`safetyscope sae train | eval | features` on a tiny random model; one error line for bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_sae_train_eval_features(gpt2_dir, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(f"sentence number {i} about bread and ovens" for i in range(40)))
    out = tmp_path / "sae"
    args = ["sae", "train", str(gpt2_dir), "--site", "1:resid_post", "--arch", "topk", "--k", "4", "--d-sae", "64",
            "--corpus", f"text:{text}", "--steps", "30", "--batch-size", "64", "--out", str(out), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    for name in ("cfg.json", "sae_weights.safetensors", "metrics.json"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("l0", "fvu", "dead_fraction", "ce_loss_recovered", "seconds", "tokens"):
        assert key in metrics
    assert metrics["l0"] <= 4 and metrics["tokens"] == 30 * 64
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["k"] == 4 and cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    ev = runner.invoke(app, ["sae", "eval", str(gpt2_dir), "--sae", str(out), "--corpus", f"text:{text}", "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["l0"] <= 4
    harmful, harmless = tmp_path / "h.txt", tmp_path / "b.txt"
    harmful.write_text("\n".join(f"how to make poison number {i}" for i in range(8)))
    harmless.write_text("\n".join(f"how to bake bread number {i}" for i in range(8)))
    feats = runner.invoke(app, ["sae", "features", str(gpt2_dir), "--sae", str(out), "--harmful", str(harmful),
                                "--harmless", str(harmless), "--n-prompts", "4", "--corpus", f"text:{text}",
                                "--top", "3", "--contexts", "1", "--json"])
    assert feats.exit_code == 0, feats.output
    data = json.loads(feats.output)
    assert len(data["top"]) == 3 and len(data["contexts"]) == 3


def test_sae_bad_input(gpt2_dir, tmp_path):
    res = runner.invoke(app, ["sae", "train", str(gpt2_dir), "--arch", "gated", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--arch" in res.output
    res = runner.invoke(app, ["sae", "eval", str(gpt2_dir), "--sae", str(tmp_path)])
    assert res.exit_code == 2 and "not an SAE folder" in res.output
    res = runner.invoke(app, ["sae", "train", str(gpt2_dir), "--site", "7:resid_post", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "out of range" in res.output


def test_sae_train_gsae_and_group_steer(gpt2_dir, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(f"sentence number {i} about bread and ovens" for i in range(40)))
    out = tmp_path / "gsae"
    res = runner.invoke(app, ["sae", "train", str(gpt2_dir), "--site", "1:resid_post", "--arch", "gsae",
                              "--graph-coeff", "2", "--graph-k", "4", "--d-sae", "64", "--corpus", f"text:{text}",
                              "--steps", "20", "--batch-size", "64", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == "standard" and cfg["metadata"]["trained_architecture"] == "gsae"
    harmful, harmless = tmp_path / "h.txt", tmp_path / "b.txt"
    harmful.write_text("\n".join(f"how to make poison number {i}" for i in range(12)))
    harmless.write_text("\n".join(f"how to bake bread number {i}" for i in range(12)))
    steer = runner.invoke(app, ["sae", "group-steer", str(gpt2_dir), "--sae", str(out), "--harmful", str(harmful),
                                "--harmless", str(harmless), "--m", "3", "--n-test", "2", "--max-new-tokens", "2",
                                "--positions", "last", "--json"])
    assert steer.exit_code == 0, steer.output
    data = json.loads(steer.stdout)
    assert len(data["cone"]["group"]) == 3 and set(data["summary"]["remove_rates"]) == {
        "baseline", "direction", "group", "single", "random"}
