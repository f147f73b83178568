import math

import torch

from safetyscope.evaluation.refusal_score import (
    last_token_logits,
    refusal_scores,
    refusal_scores_from_logits,
    refusal_token_ids,
)
from safetyscope.interventions.hooks import add


def test_log_odds_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    scores = refusal_scores_from_logits(logits, [0, 2])
    p = torch.softmax(logits.double(), -1)
    pr = p[:, 0] + p[:, 2]
    expected = torch.log(pr) - torch.log1p(-pr)
    assert torch.allclose(scores.double(), expected, atol=1e-6)
    assert math.isclose(float(scores[1]), 0.0, abs_tol=1e-6)  # P_R = 1/2


def test_token_ids_and_model_scores(llama):
    ids = refusal_token_ids(llama.tokenizer, ("I", "No"))
    assert ids == sorted(set(ids)) and len(ids) >= 2
    prompts = ["hello there", "a longer prompt for batching", "x"]
    batched = last_token_logits(llama, prompts, batch_size=2)
    single = torch.cat([last_token_logits(llama, [p]) for p in prompts])
    assert torch.allclose(batched, single, atol=1e-5)
    base = refusal_scores(llama, prompts, ids)
    with add(llama, torch.randn(32) * 5, layers=[1]):
        steered = refusal_scores(llama, prompts, ids)
    assert not torch.allclose(base, steered)
