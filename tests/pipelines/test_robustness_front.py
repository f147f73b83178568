"""`robustness-front` on the organism: a 4-trial front runs, resumes from its study, and is non-dominated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safetyscope.cli import app

pytest.importorskip("optuna")
runner = CliRunner()
ARGS = [
    "--n-train",
    "8",
    "--n-val",
    "4",
    "--n-test",
    "4",
    "--check",
    "2",
    "--max-new-tokens",
    "8",
    "--batch",
    "2",
]


def test_front_runs_resumes_and_is_non_dominated(tmp_path: Path, organism_dir: Path) -> None:
    from safetyscope.causal.front_result import RobustnessFront

    out = tmp_path / "front"
    res = runner.invoke(
        app, ["robustness-front", str(organism_dir), "--out", str(out), "--trials", "4", *ARGS, "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert set(summary["worst_case"]) == {"0.1", "0.5"}
    first = RobustnessFront.load(out)
    assert (
        len(first.trials) == 4
        and (out / "front.png").stat().st_size > 1000
        and (out / "study.journal").is_file()
    )
    names = [c.name for c in first.checks]
    assert names[0] == "baseline" and names[-1] == "control" and 2 <= len(names) <= 4
    base = first.checks[0].result.refusal["harmful"]
    assert base.n == 4 and base.ci_low <= (base.rate or 0) <= base.ci_high
    # resume: 2 more trials, the first 4 kept with their parameters
    res = runner.invoke(
        app, ["robustness-front", str(organism_dir), "--out", str(out), "--trials", "6", *ARGS]
    )
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output
    second = RobustnessFront.load(out)
    assert len(second.trials) == 6
    assert [t.to_dict() for t in second.trials[:4]] == [
        dict(t.to_dict(), on_front=s.on_front) for t, s in zip(first.trials, second.trials, strict=False)
    ]
    for t in second.front:
        assert not any(
            o.refusal <= t.refusal and o.kl <= t.kl and (o.refusal < t.refusal or o.kl < t.kl)
            for o in second.trials
        )
    assert json.loads((out / "results.json").read_text())["front"] == [t.number for t in second.front]
    # --force starts over; a bad sampler is one error line
    res = runner.invoke(
        app, ["robustness-front", str(organism_dir), "--out", str(out), "--trials", "2", *ARGS, "--force"]
    )
    assert res.exit_code == 0 and len(RobustnessFront.load(out).trials) == 2
    bad = runner.invoke(
        app, ["robustness-front", str(organism_dir), "--out", str(tmp_path / "b"), "--sampler", "x"]
    )
    assert bad.exit_code == 2 and "tpe or nsga2" in bad.output
