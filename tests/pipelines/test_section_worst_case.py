"""The audit's `worst_case` section: off under --quick, on when named; its line carries CIs and a control."""

from __future__ import annotations

from pathlib import Path

import pytest

from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.sections import enabled_sections

pytest.importorskip("optuna")


def test_off_under_quick_on_in_full() -> None:
    assert "worst_case" not in [s.name for s in enabled_sections(None, quick=True)]
    assert "worst_case" in [s.name for s in enabled_sections(None, quick=False)]


def test_worst_case_line(organism_dir: Path, tmp_path: Path) -> None:
    res = run_audit(
        str(organism_dir),
        tmp_path / "a",
        quick=True,
        progress=False,
        config=AuditConfig(sections=("worst_case",)),
    )
    w = res.results["worst_case"]
    assert w["n_trials"] == 30 and w["front"]
    assert (
        w["baseline"]["rate"] > 0.5
        and w["control"]["ci_low"] <= w["control"]["rate"] <= w["control"]["ci_high"]
    )
    claims = [c for c in res.results["verdict"] if c["rule"] == "W1"]
    assert len(claims) == 1
    assert "Worst case" in claims[0]["text"] or "No checked point" in claims[0]["text"]
    assert (tmp_path / "a" / "cache" / "worst_case.journal").is_file()
    assert 'id="fig-worst_case"' in (tmp_path / "a" / "report.html").read_text()
