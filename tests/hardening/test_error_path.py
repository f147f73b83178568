"""The one error path of the CLI: one line, exit 2 (1 for bugs), tracebacks only when asked."""

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.cli._app import describe_error

runner = CliRunner()


def test_one_line_and_exit_2_without_traceback(tmp_path):
    r = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: No such model directory")
    assert "Traceback" not in r.output


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(tmp_path, monkeypatch, how):
    argv = ["info", str(tmp_path / "missing")]
    if how == "flag":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("SAFETYSCOPE_DEBUG", "1")
    r = runner.invoke(app, argv)
    assert r.exit_code == 2
    assert "Traceback (most recent call last)" in r.stderr and "ModelLoadError" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("error: No such model directory")


def test_rich_markup_in_paths_prints_literally(tmp_path):
    weird = tmp_path / "[bold red]x[/bold red]"
    r = runner.invoke(app, ["info", str(weird)])
    assert r.exit_code == 2 and "[bold red]x[/bold red]" in r.stderr


def test_long_messages_stay_on_one_line(tmp_path):
    deep = tmp_path / ("d" * 150) / "missing"  # longer than the 80-column test terminal
    r = runner.invoke(app, ["info", str(deep)])
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1 and str(deep) in r.stderr


def test_library_errors_map_to_clear_lines():
    msg, code = describe_error(PermissionError(13, "Permission denied", "/x/y"))
    assert code == 2 and msg == "cannot access /x/y: Permission denied"
    msg, code = describe_error(MemoryError())
    assert code == 2 and "out of memory" in msg and "--batch-size" in msg
    import torch

    msg, code = describe_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert code == 2 and "Lower --batch-size" in msg and "Tried to allocate" in msg
    msg, code = describe_error(KeyError("x"))
    assert code == 1 and "bug in safetyscope" in msg and "--debug" in msg
    msg, code = describe_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"))
    assert code == 2 and "UTF-8" in msg


def test_usage_errors_are_one_line_with_a_help_pointer():
    r = runner.invoke(app, ["activations", "collect", "m", "--prompts", "p", "--out", "o", "--batch-size", "0"])
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1
    assert "--batch-size" in r.stderr and "safetyscope activations collect --help" in r.stderr
    assert runner.invoke(app, []).exit_code in (0, 2)  # no arguments: help, as before
