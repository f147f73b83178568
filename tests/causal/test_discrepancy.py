"""Predict-control discrepancy on the session organism, and the rank correlation it reports."""

import pytest

from safetyscope import load_model
from safetyscope.causal.discrepancy import DIRECTIONS, DiscrepancyReport, predict_control, spearman
from safetyscope.organism.judge import OrganismJudge
from safetyscope.pipelines.refusal import refusal_prompts


def test_spearman_matches_hand_values():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # ties: ranks [1.5, 1.5, 3] and [1, 2, 3] -> Pearson of centred ranks
    assert spearman([5, 5, 7], [1, 2, 3]) == pytest.approx(0.8660254, rel=1e-6)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_predict_control_on_the_organism(organism_dir):
    lm = load_model(organism_dir)
    p = refusal_prompts(lm, n_train=24, n_val=8, n_test=16)
    rep = predict_control(
        lm,
        p.harmful_train,
        p.harmless_train,
        p.harmful_val,
        p.harmless_val,
        p.harmful_test,
        p.harmless_test,
        OrganismJudge(),
        layers=[2],
        max_new_tokens=8,
    )
    (row,) = rep.layers
    assert set(row.scores) == {*DIRECTIONS, "random"}
    assert set(row.cosines) == {"probe|diff_means", "probe|selected", "diff_means|selected"}
    assert all(-1.0 <= c <= 1.0 + 1e-6 for c in row.cosines.values())
    assert row.scores["diff_means"].auc > 0.9  # the organism's contrast is linearly readable
    assert rep.baseline_harmful.rate >= 0.8 and rep.baseline_harmless.rate <= 0.2
    # the refusal directions control refusal; a random direction of the same norm does not
    assert min(row.scores[n].ablated_refusal.rate for n in DIRECTIONS) <= 0.3
    assert row.scores["random"].ablated_refusal.rate >= 0.7
    assert row.scores["diff_means"].induced_refusal.rate > row.scores["random"].induced_refusal.rate
    assert all(s.ablated_refusal.n == 16 and s.induced_refusal.n == 16 for s in row.scores.values())
    assert DiscrepancyReport.from_dict(rep.to_dict()).to_dict() == rep.to_dict()
    assert rep.best_classifier(row) in DIRECTIONS and set(rep.best_controllers(row)) <= set(DIRECTIONS)
    if rep.supports_claim(row):
        assert rep.best_classifier(row) not in rep.best_controllers(row)
