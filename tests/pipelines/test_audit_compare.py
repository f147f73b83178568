"""``audit compare`` on synthetic results: comparability checks, rule C1 and the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safetyscope.errors import SafetyscopeError
from safetyscope.pipelines.audit_compare import compare_audits


def _write(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def test_refusal_drop_is_a_finding_with_cis_and_the_page_has_every_figure(results_v2, tmp_path: Path) -> None:
    a = _write(tmp_path / "before", results_v2())
    b = _write(tmp_path / "after", results_v2(refuse=0, ablated=0, control=0))
    res = compare_audits([a, b], tmp_path / "cmp")
    assert res.labels == ["before", "after"] and all(c.same for c in res.checks)
    harmful, harmless = res.verdict
    assert (
        harmful["status"] == "finding"
        and "0% [0, 28] is lower than before's 100% [72, 100]" in harmful["text"]
    )
    assert harmless["status"] == "non-finding"
    page = res.report.read_text()
    for name in ("compare_refusal", "compare_ablation", "compare_spectrum", "compare_refusal_by_layer"):
        assert f'id="fig-{name}"' in page
        assert (tmp_path / "cmp" / "figures" / f"{name}.pdf").is_file()
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["labels"] == ["before", "after"] and len(saved["checks"]) == len(res.checks)


def test_differences_in_prompts_or_judge_are_reported_and_make_claims_exploratory(
    results_v2, tmp_path: Path
) -> None:
    other = results_v2(refuse=0)
    other["provenance"] = dict(other["provenance"], judge="rules", manifest={"prompts": "other"})
    res = compare_audits(
        [_write(tmp_path / "a", results_v2()), _write(tmp_path / "b", other)], tmp_path / "cmp"
    )
    different = {c.name for c in res.checks if not c.same}
    assert different == {"prompts (hash of every split)", "judge"}
    assert res.verdict[0]["status"] == "exploratory" and "not directly comparable" in res.verdict[0]["text"]
    assert all(c["status"] == "exploratory" for c in res.verdict)
    assert "DIFFERENT" in res.report.read_text()


def test_bad_input_is_refused(results_v2, tmp_path: Path) -> None:
    a = _write(tmp_path / "a", results_v2())
    with pytest.raises(SafetyscopeError, match="at least two"):
        compare_audits([a], tmp_path / "cmp")
    with pytest.raises(SafetyscopeError, match="No audit results"):
        compare_audits([a, tmp_path / "missing"], tmp_path / "cmp")
    same_name = _write(tmp_path / "x" / "a", results_v2())
    res = compare_audits([a, same_name], tmp_path / "cmp")
    assert res.labels == ["a", "a (2)"]
    from safetyscope.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        compare_audits([a, same_name], tmp_path / "cmp")
