"""The audit's ``attribution`` section on the session organism: EAP-IG components and top-K circuits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.sections import enabled_sections
from safetyscope.pipelines.sections.attribution import carries, component_scores, control_max


def test_attribution_section_scores_both_tasks_against_random_circuits(
    organism_dir: Path, tmp_path: Path
) -> None:
    cfg = replace(
        AuditConfig.quick_preset(), sections=("attribution",), n_train=24, n_val=8, n_test=4, n_backdoor=16
    )
    run_audit(str(organism_dir), tmp_path / "run", config=cfg, progress=False)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    tasks = r["attribution"]["tasks"]
    assert set(tasks) == {"refusal", "backdoor"}
    for name, t in tasks.items():
        assert "skipped" not in t, t
        assert 1 <= t["n_pairs"] <= 6 and t["k"] == 20 and t["n_edges"] > 20
        assert len(t["random"]) == 10 and len(t["random_connected"]) == 10
        assert t["metric"] == ("refusal" if name == "refusal" else "top")
        assert t["clean_metric"] > t["corrupt_metric"]  # harmful prompts refuse; the trigger's top token wins
        comps = [abs(x["score"]) for x in t["components"]]
        assert comps == sorted(comps, reverse=True) and all(x["node"] != "input" for x in t["components"])
        curve = {c["n_edges"]: c["value"] for c in t["curve"]}
        assert abs(curve[0]) < 1e-6 and abs(curve[t["n_edges"]] - 1) < 1e-6  # empty = corrupted, full = clean
    # on the organism the backdoor's top-20 circuit is faithful and random circuits are not (rule AT1)
    bd = tasks["backdoor"]
    assert bd["faithfulness"] > 0.5 > control_max(bd) and carries(bd)
    claims = [c for c in r["verdict"] if c["section"] == "attribution"]
    assert [c["rule"] for c in claims] == ["AT1", "AT1"]
    assert claims[1]["status"] == "finding"
    page = (tmp_path / "run" / "report.html").read_text()
    assert "attribution_faithfulness" in page and "attribution_components_backdoor" in page
    assert "attribution" not in [s.name for s in enabled_sections(None, quick=True)]


def test_component_scores_sum_outgoing_edges() -> None:
    graph = {
        "edges": [
            {"src": "a0.h0", "dst": "m0", "score": -1.0},
            {"src": "a0.h0", "dst": "logits", "score": -2.0},
            {"src": "m0", "dst": "logits", "score": 0.5},
            {"src": "input", "dst": "m0", "score": None},
        ]
    }
    assert component_scores(graph) == [{"node": "a0.h0", "score": -3.0}, {"node": "m0", "score": 0.5}]
    assert not carries({"faithfulness": 0.4, "random_max": 0.0, "random_connected_max": 0.0})
    assert not carries({"faithfulness": 0.9, "random_max": 0.0, "random_connected_max": 0.95})
    assert carries({"faithfulness": 0.9, "random_max": 0.1, "random_connected_max": None})
