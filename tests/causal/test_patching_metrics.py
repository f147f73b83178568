import math

import pytest
import torch

from safetyscope.causal import PatchMetric, normalised_recovery


def test_logit_diff_kl_and_refusal_on_known_logits():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    assert PatchMetric("logit_diff", answer_id=0, wrong_id=2).score(logits).tolist() == [3.0, 0.0]
    kl = PatchMetric("kl").score(logits, logits.flip(0))
    # row 1: KL(P_clean = softmax(logits[0]) || Q_patched = uniform)
    lp = torch.log_softmax(logits[0].double(), -1)
    assert kl[1].item() == pytest.approx(float((lp.exp() * (lp - math.log(1 / 3))).sum()))
    assert PatchMetric("kl").score(logits, logits).abs().max() < 1e-12
    ref = PatchMetric("refusal", token_ids=(1,)).score(logits[1:])
    assert ref.item() == pytest.approx(math.log((1 / 3) / (2 / 3)))


def test_normalised_recovery():
    assert normalised_recovery(2.0, clean=3.0, corrupted=1.0) == 0.5
    assert normalised_recovery(1.0, clean=3.0, corrupted=1.0) == 0.0
    assert normalised_recovery(0.25, clean=0.0, corrupted=1.0) == 0.75  # KL: lower is cleaner
    assert normalised_recovery(1.0, clean=1.0, corrupted=1.0) is None
