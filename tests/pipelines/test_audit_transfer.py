"""The audit's ``transfer`` section (``audit --transfer-from``) on the session organism mapped into itself."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig


def test_transfer_section_maps_a_fix_with_its_controls(organism_dir: Path, tmp_path: Path) -> None:
    cfg = replace(AuditConfig.quick_preset(), sections=("transfer",), transfer_from=str(organism_dir),
                  transfer_train=48, n_backdoor=12, n_test=8)
    run_audit(str(organism_dir), tmp_path / "run", config=cfg, progress=False)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    t = r["transfer"]
    assert "skipped" not in t and len(t["pair"]) == 2
    scan = t["scan"]["scan"]
    assert len(scan["cka"]) == len(scan["src_layers"]) and all(0 <= v <= 1 + 1e-6 for row in scan["cka"] for v in row)
    assert t["fit"]["val_fvu"] < 0.2  # a model mapped into itself: a near-identity affine map
    rate, control = t["transfer_rate"], t["transfer_rate_random_control"]
    assert rate["n"] == control["n"] and rate["rate"] >= control["rate"]
    claims = [c for c in r["verdict"] if c["section"] == "transfer"]
    assert len(claims) == 1 and claims[0]["rule"] == "T1"
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Transfer from another model" in page and "transfer_rates" in page


def test_without_a_source_the_section_says_why(organism_dir: Path, tmp_path: Path) -> None:
    cfg = replace(AuditConfig.quick_preset(), sections=("transfer",))
    run_audit(str(organism_dir), tmp_path / "run", config=cfg, progress=False)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["transfer"] == {"skipped": "no source model (audit --transfer-from SRC)"}
    assert not [c for c in r["verdict"] if c["section"] == "transfer"]


def test_the_source_is_not_part_of_the_resume_key() -> None:
    base = AuditConfig()
    assert replace(base, transfer_from="organism").key() == base.key()
