"""``safetyscope audit schema`` and the argument errors of ``audit compare``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()


def test_schema_prints_the_shipped_json_schema() -> None:
    res = runner.invoke(app, ["audit", "schema"])
    assert res.exit_code == 0, res.output
    schema = json.loads(res.stdout)
    assert schema["properties"]["schema_version"] == {"const": 2} and "verdict" in schema["required"]


def test_compare_argument_errors_are_one_line_exit_2(tmp_path) -> None:
    res = runner.invoke(app, ["audit", "compare", str(tmp_path), str(tmp_path)])
    assert res.exit_code == 2 and "needs --out" in res.output
    res = runner.invoke(app, ["audit", "compare", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "at least two" in res.output
    res = runner.invoke(
        app, ["audit", "compare", str(tmp_path), str(tmp_path / "b"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "No audit results" in res.output
    res = runner.invoke(app, ["audit", "some-model", "extra-arg"])
    assert res.exit_code == 2 and "unexpected extra arguments" in res.output
