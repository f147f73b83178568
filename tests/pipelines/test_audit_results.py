import json

import pytest

from safetyscope.evaluation.metrics import Rate
from safetyscope.pipelines.audit_results import SECTIONS, AuditResults


def _arm(rate_harmful, rate_harmless, kl=None):
    return {"refusal": {"harmful": Rate.from_counts(rate_harmful, 10).to_dict(),
                        "harmless": Rate.from_counts(rate_harmless, 10).to_dict()},
            "incoherent": {"harmful": Rate.from_counts(0, 10).to_dict(), "harmless": Rate.from_counts(0, 10).to_dict()},
            "kl_first_token": kl, "kl_continuation": kl, "samples": {"harmful": [["p", "c", "refusal"]]}}


def _results():
    iv = {name: {"intervention": name, "params": {"site": "L2.resid_pre"}, "provenance": {"model": "m"},
                 "arms": {"baseline": _arm(10, 0), "intervened": _arm(1, 9, 0.01), "control": _arm(10, 0, 0.0)}}
          for name in ("ablation", "addition", "orthogonalized")}
    return {
        "behavior": {"refusal": {"harmful": Rate.from_counts(10, 10).to_dict(), "harmless": Rate.from_counts(0, 10).to_dict()}},
        "directions": {"layers": [1, 2], "best": {"layer": 2, "site": "L2.resid_pre"}, "selection": {"error": "x"}},
        "geometry": {"spectrum": [], "refusal_by_layer": {"baseline_harmful": 2.0, "baseline_harmless": -3.0,
                                                          "layers": [{"layer": 1, "ablated": 0.5, "control": 1.9}],
                                                          "metric": "m"}},
        "interventions": iv, "backdoor": {"skipped": "no trigger given", "layers": []},
        "controls": {"probes": "shuffled"}, "provenance": {"d_model": 8}, "timings": {"total": {"seconds": 1.0}},
    }


def test_results_json_round_trips_through_typed_results():
    data = json.loads(json.dumps(_results()))
    typed = AuditResults.from_dict(data)
    assert typed.to_dict() == data and tuple(typed.to_dict()) == SECTIONS
    assert typed.interventions["ablation"].rate("intervened", "harmful") == pytest.approx(0.1)
    assert typed.refusal_by_layer.layers[0].ablated == 0.5
    assert typed.selection is None  # the selection recorded only an error
    head = typed.headline()
    assert head["best_layer"] == 2 and head["ablation_harmful"]["k"] == 1 and head["addition_harmless"]["k"] == 9
