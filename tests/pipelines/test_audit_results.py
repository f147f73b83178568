import json

import pytest

from safetyscope.pipelines.audit_results import SCHEMA_VERSION, SECTIONS, AuditResults


def test_results_json_round_trips_through_typed_results(results_v2):
    data = json.loads(json.dumps(results_v2()))
    typed = AuditResults.from_dict(data)
    assert typed.to_dict() == data
    assert set(SECTIONS) <= set(data) and typed.schema_version == SCHEMA_VERSION == 2
    assert typed.interventions["ablation"].rate("intervened", "harmful") == pytest.approx(0.1)
    assert typed.refusal_by_layer.layers[1].ablated_ci == [-1.3, -0.7]
    assert typed.selection is None  # the selection recorded only an error
    head = typed.headline()
    assert (
        head["best_layer"] == 2 and head["ablation_harmful"]["k"] == 1 and head["addition_harmless"]["k"] == 9
    )


def test_schema_1_results_are_still_read(results_v2):
    data = results_v2()
    del data["schema_version"], data["sections"], data["verdict"]
    data["geometry"]["refusal_by_layer"] = data.pop("refusal_by_layer")
    for row in data["geometry"]["refusal_by_layer"]["layers"]:
        del row["ablated_ci"], row["control_ci"]
    typed = AuditResults.from_dict(data)
    assert typed.refusal_by_layer.layers[0].ablated_ci is None and "refusal_by_layer" not in typed.geometry
    assert typed.sections == [
        "behavior",
        "directions",
        "geometry",
        "refusal_by_layer",
        "interventions",
        "backdoor",
    ]
    assert typed.to_dict()["schema_version"] == 2


def test_sections_turned_off_are_absent_and_a_newer_schema_is_refused(results_v2):
    from safetyscope.errors import SafetyscopeError

    data = results_v2()
    for k in ("geometry", "refusal_by_layer", "interventions", "backdoor"):
        del data[k]
    data["sections"] = ["behavior", "directions"]
    typed = AuditResults.from_dict(data)
    assert (
        typed.geometry is None and typed.interventions is None and "ablation_harmful" not in typed.headline()
    )
    assert typed.to_dict() == data
    with pytest.raises(SafetyscopeError, match="schema_version 3"):
        AuditResults.from_dict({**data, "schema_version": 3})
