import pytest
import torch

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.conditional import cast, fit_threshold


def test_cast_steers_only_matching_sequences(llama, resid):
    ids = torch.randint(3, 97, (4, 6))
    h1 = resid(llama, ids)[1][:, -1]
    cond = h1[0]  # row 0 matches itself perfectly
    scores = torch.nn.functional.cosine_similarity(h1, cond.unsqueeze(0))
    threshold = float(scores.sort(descending=True).values[1] + 1e-4)  # only row 0 above
    v = torch.randn(32)
    base = resid(llama, ids)
    with cast(llama, cond, threshold, v, scale=3.0, condition_layer=1, behavior_layers=[2], score="cosine") as state:
        steered = resid(llama, ids)
    assert state.steer.tolist() == [True, False, False, False]
    assert torch.allclose(steered[2][0], base[2][0] + 3.0 * v, atol=1e-4)
    assert torch.allclose(steered[2][1:], base[2][1:], atol=1e-6)


def test_cast_decision_persists_through_generation(llama):
    ids = torch.randint(3, 97, (2, 5))
    with cast(llama, torch.randn(32), -2.0, torch.zeros(32), 1.0, 1, [1]) as state:
        llama.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert len(state.history) == 1 and state.steer.all()


def test_cast_rejects_behaviour_before_condition(llama):
    with pytest.raises(SafetyscopeError, match="before the condition layer"):
        with cast(llama, torch.randn(32), 0.0, torch.randn(32), 1.0, condition_layer=2, behavior_layers=[1]):
            pass


def test_fit_threshold():
    pos, neg = torch.tensor([0.8, 0.9, 0.7]), torch.tensor([0.1, 0.2, 0.65])
    t = fit_threshold(pos, neg)
    assert t.above and t.accuracy == 1.0 and 0.65 < t.threshold < 0.7
    inv = fit_threshold(neg, pos)
    assert not inv.above and inv.accuracy == 1.0
    with pytest.raises(SafetyscopeError):
        fit_threshold(torch.tensor([]), neg)
