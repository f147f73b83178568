"""The audit's ``plateaus`` section on the session organism: real vs Gaussian and random targets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.sections import enabled_sections
from safetyscope.pipelines.sections.plateaus import mean_ci


def test_plateaus_section_tables_every_target_kind(organism_dir: Path, tmp_path: Path) -> None:
    cfg = replace(
        AuditConfig.quick_preset(), sections=("plateaus",), n_test=10, n_train=8, n_val=4, n_backdoor=4
    )
    run_audit(str(organism_dir), tmp_path / "run", config=cfg, progress=False)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    p = r["plateaus"]
    assert p["n"] == 20 and p["n_steps"] == 20 and p["site"] == "L0.resid_post"
    assert set(p["kinds"]) == {"real", "gaussian", "cov_random", "random"}
    for kind, v in p["kinds"].items():
        assert v["n"] == 20 and len(v["median_curve"]) == 21
        assert abs(v["median_curve"][0]) < 1e-9 and abs(v["median_curve"][-1] - 1) < 1e-9
        assert 1 <= v["plateau_mean"] <= 20  # the change reaches 10% at some step of the path
        lo, hi = v["plateau_ci"]
        assert lo <= v["plateau_mean"] <= hi
        assert v["ks_plateau_vs_real"] == 0 if kind == "real" else 0 <= v["ks_plateau_vs_real"] <= 1
    claims = [c for c in r["verdict"] if c["section"] == "plateaus"]
    assert len(claims) == 1 and claims[0]["rule"] == "PL1"
    real, rnd = p["kinds"]["real"], p["kinds"]["random"]
    assert (claims[0]["status"] == "finding") == (real["plateau_ci"][0] > rnd["plateau_ci"][1])
    assert "Activation plateaus" in (tmp_path / "run" / "report.html").read_text()
    assert "plateaus" not in [s.name for s in enabled_sections(None, quick=True)]


def test_mean_ci_matches_the_normal_interval() -> None:
    m, lo, hi = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert m == 2.0 and abs(hi - 2.0 - 1.96 * 1.0 / 3**0.5) < 1e-12 and abs((m - lo) - (hi - m)) < 1e-12
    assert mean_ci([float("nan")]) is None
