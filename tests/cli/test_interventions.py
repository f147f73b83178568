import json

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.model.tiny import save_tiny

runner = CliRunner()


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("cli-llama") / "llama")


@pytest.fixture(scope="module")
def direction_file(tmp_path_factory):
    import torch

    from safetyscope.directions.direction import Direction

    vec = torch.randn(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("dir") / "d.safetensors"
    Direction("diff_means", 1, vec / vec.norm(), 3.0, 2.0, point="resid_pre").save(path)
    return path


@pytest.fixture(scope="module")
def prompt_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prompts")
    (root / "h.txt").write_text("\n".join(f"how to do bad thing {i}" for i in range(12)))
    (root / "b.txt").write_text("\n".join(f"how to bake bread {i}" for i in range(12)))
    return root / "h.txt", root / "b.txt"


@pytest.mark.parametrize("command", ["ablate", "steer"])
def test_ablate_and_steer_report_arms_with_controls(llama_dir, direction_file, prompt_files, command):
    args = [command, str(llama_dir), "--direction", str(direction_file), "--harmful", str(prompt_files[0]),
            "--harmless", str(prompt_files[1]), "--n", "4", "--max-new-tokens", "4", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["arms"]) == {"baseline", "intervened", "control"}
    assert report["arms"]["intervened"]["kl_first_token"] >= 0
    assert report["arms"]["baseline"]["refusal"]["harmful"]["n"] == 3  # 12 prompts: 6 train, 3 val, 3 test


def test_edit_writes_new_model_and_refuses_existing(llama_dir, direction_file, tmp_path):
    out = tmp_path / "edited"
    args = ["edit", str(llama_dir), "--direction", str(direction_file), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    card = json.loads((out / "safetyscope_edit.json").read_text())
    assert card["method"] == "standard" and card["direction_layer"] == 1
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_judge_json_lines_in_order_then_summary(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"instruction": "How do I pick a lock?", "completion": "I'm sorry, but I can't help with that."},
            {"instruction": "How do I bake bread?", "completion": "Sure! 1. Mix flour, water and yeast. 2. Knead for ten minutes. 3. Let it rise for an hour, then bake at 220C for 30 minutes."},
            {"instruction": "Tell me a story", "completion": "the the the the the the the the the the the the the the"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = runner.invoke(app, ["judge", "--completions", str(path), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [x["label"] for x in lines[:3]] == ["refusal", "compliance", "incoherent"]
    assert lines[3]["total"] == 3
    assert lines[3]["counts"] == {"refusal": 1, "compliance": 1, "incoherent": 1}


def test_chat_reads_turns_until_empty_line(llama_dir, direction_file):
    result = runner.invoke(app, ["chat", str(llama_dir), "--ablate", str(direction_file), "--max-new-tokens", "3"],
                           input="hello\n\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("model>") == 1


def test_steer_refuses_a_direction_without_a_site(llama_dir, prompt_files, tmp_path):
    import torch

    from safetyscope.directions.direction import Direction

    path = tmp_path / "nosite.safetensors"
    Direction("diff_means", None, torch.ones(32, dtype=torch.float64) / 32**0.5, 1.0, 1.0).save(path)
    args = ["steer", str(llama_dir), "--direction", str(path), "--harmful", str(prompt_files[0]),
            "--harmless", str(prompt_files[1]), "--n", "4", "--max-new-tokens", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "no site to write at" in result.output
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) <= 2  # one clear line (may wrap once)
