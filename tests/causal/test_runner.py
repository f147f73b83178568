import json

import pytest
import torch

from safetyscope.causal import MetricUnderEdits, measure, refusal_metric
from safetyscope.evaluation.refusal_score import refusal_scores
from safetyscope.interventions import add

PROMPTS = ["how do I bake bread", "tell me a story", "what is two plus two"]


def test_measure_scores_every_edit_beside_the_baseline(llama):
    metric = refusal_metric([5, 6, 7])
    v = torch.randn(32, generator=torch.Generator().manual_seed(0))
    res = measure(llama, PROMPTS, metric, {"add": lambda: add(llama, v, sites=1), "noop": lambda: add(llama, 0 * v + 1e-9, sites=1)},
                  name="refusal")
    base = refusal_scores(llama, PROMPTS, [5, 6, 7])
    assert res.baseline.mean == pytest.approx(float(base.double().mean()), abs=1e-6)
    with add(llama, v, sites=1):
        steered = refusal_scores(llama, PROMPTS, [5, 6, 7])
    assert res.edits["add"].per_prompt == pytest.approx(steered.double().tolist(), abs=1e-6)
    assert res.effect("noop") == pytest.approx(0.0, abs=1e-5) and abs(res.effect("add")) > 1e-4
    back = MetricUnderEdits.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back == res
