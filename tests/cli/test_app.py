

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("info", "models", "organism"):
        assert cmd in result.output


def test_user_errors_exit_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "No such model directory" in result.output
    assert "Traceback" not in result.output


