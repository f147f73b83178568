"""The pluggable audit sections: discovery, selection from the config, and the verdict rules."""

from __future__ import annotations

import pytest

from safetyscope.errors import ConfigError
from safetyscope.pipelines.audit_config import AuditConfig
from safetyscope.pipelines.audit_page import audit_page, compute_verdict, figure_specs
from safetyscope.pipelines.audit_results import AuditResults
from safetyscope.pipelines.sections import enabled_sections, registry


@pytest.fixture
def verdict(results_v2):
    def rules(**kw) -> dict[str, tuple[str, str]]:
        return {c.rule: (c.status, c.text) for c in compute_verdict(AuditResults.from_dict(results_v2(**kw)))}

    return rules


def test_every_builtin_section_is_discovered_in_order_with_its_parts():
    reg = registry()
    assert list(reg) == [
        "behavior",
        "directions",
        "geometry",
        "refusal_by_layer",
        "interventions",
        "backdoor",
        "attribution",
        "sae",
        "transfer",
        "regions",
        "plateaus",
    ]
    assert not any(reg[n].quick for n in ("attribution", "sae", "transfer", "regions", "plateaus"))
    assert reg["behavior"].core and reg["directions"].core
    assert reg["refusal_by_layer"].result_type is not None and reg["interventions"].requires == (
        "directions",
    )


def test_sections_are_chosen_by_config_and_quick():
    assert [s.name for s in enabled_sections(("backdoor",), quick=False)] == [
        "behavior",
        "directions",
        "backdoor",
    ]
    assert len(enabled_sections(None, quick=False)) == len(registry())
    assert {s.name for s in enabled_sections(None, quick=True)} == {
        n for n, s in registry().items() if s.quick
    }
    with pytest.raises(ConfigError, match="unknown sections"):
        AuditConfig.from_dict({"sections": ["no_such_section"]})
    cfg = AuditConfig.from_dict({"sections": ["geometry"]})
    assert (
        cfg.sections == ("geometry",) and cfg.key() == AuditConfig().key()
    )  # sections do not change the cache


def test_verdict_rules_on_a_refusing_model(verdict):
    v = verdict()
    assert v["B1"][0] == "finding" and v["B2"][0] == "finding"
    assert v["I1"][0] == "finding" and "drops held-out harmful refusal from 100%" in v["I1"][1]
    assert "random control 100%" in v["I1"][1] and "KL 0.01 nats" in v["I1"][1]
    assert v["R1"][0] == "finding" and "layer(s) 2 " in v["R1"][1]  # layer 1's interval overlaps its control
    assert v["G1"][0] == "finding" and "from layer 2" in v["G1"][1]  # layer 1's probe overlaps its control
    assert v["G2"][0] == "finding"
    assert v["D1"][0] == "finding" and "until layer 0" in v["D1"][1]


def test_non_findings_and_exploratory_results_are_labelled(verdict):
    v = verdict(ablated=9, control=10)  # ablation overlaps its control
    assert v["I1"][0] == "non-finding"
    v = verdict(refuse=1)  # refuses 1/10 harmful vs 0/10 harmless: no refusal to explain
    assert v["B1"][0] == "exploratory" and v["I1"][0] == v["I2"][0] == v["I3"][0] == "exploratory"
    v = verdict(steer=(30, 0, 30))  # equal-norm noise removes the backdoor as well as the patch
    assert v["D1"][0] == "non-finding" and "control equals intervention" in v["D1"][1]
    assert "noise alone removes it at layer(s) 0" in v["D1"][1]


def test_page_has_a_section_and_linked_figures_for_each_section_that_ran(results_v2):
    r = AuditResults.from_dict(results_v2())
    r.verdict = compute_verdict(r)
    page = audit_page(r)
    assert [s["id"] for s in page["sections"]] == r.sections
    names = {s["name"] for s in figure_specs(r)}
    assert {
        "behavior",
        "spectrum",
        "probes",
        "lens",
        "cosines",
        "refusal_by_layer",
        "interventions",
        "backdoor_steerability",
    } <= names
    assert all(c["figure"] in names for c in page["verdict"] if c["figure"])
    assert all(c["section"] in r.sections for c in page["verdict"])
