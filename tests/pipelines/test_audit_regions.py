"""The audit's ``regions`` section on the session organism: model vs its random-init twin."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.sections import enabled_sections


def test_regions_section_measures_the_model_and_its_twin(organism_dir: Path, tmp_path: Path) -> None:
    cfg = replace(
        AuditConfig.quick_preset(), sections=("regions",), n_test=12, n_train=8, n_val=4, n_backdoor=4
    )
    run_audit(str(organism_dir), tmp_path / "run", config=cfg, progress=False)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    g = r["regions"]
    assert g["n"] == 12 and len(g["alphas"]) == 21 and set(g["pairs"]) == {"different", "similar"}
    for row in g["pairs"].values():
        for name in ("trained", "twin"):
            x = row[name]
            assert 1 <= x["n_pairs"] <= 12 and len(x["slopes"]) == x["n_pairs"]
            # a max slope of a curve from 0 to 1 over 20 steps lies in [1, 20]
            assert all(1 - 1e-6 <= s <= 20 + 1e-6 for s in x["slopes"])
            lo, hi = x["median_ci"]
            assert lo <= x["median_max_slope"] <= hi
            assert x["endpoint_error"] < 1e-4  # α = 0 reproduces prompt A
            assert x["curve"]["median"][0] == 0.0 and abs(x["curve"]["median"][-1] - 1.0) < 1e-9
        assert row["trained"]["model_fingerprint"] != row["twin"]["model_fingerprint"]
        assert row["ratio"] == row["trained"]["median_max_slope"] / row["twin"]["median_max_slope"]
    claims = [c for c in r["verdict"] if c["section"] == "regions"]
    assert [c["rule"] for c in claims] == ["RG1", "RG1"]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Stable regions" in page and "regions_slopes" in page


def test_regions_is_off_under_quick() -> None:
    assert "regions" not in [s.name for s in enabled_sections(None, quick=True)]
    assert "regions" in [s.name for s in enabled_sections(None, quick=False)]
