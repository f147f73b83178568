import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safetyscope.analysis.probes import ProbeReport, auc_from_ranks, probe_layers, stratified_split
from safetyscope.directions import DirectionError
from safetyscope.stats import wilson_interval


def auc_pairs(scores, labels):
    """AUC by counting all (positive, negative) pairs: 1 for a win, 1/2 for a tie."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=2, max_size=40))
def test_auc_from_ranks_equals_pair_count(rows):
    scores = [float(s) for s, _ in rows]
    labels = [y for _, y in rows]
    if all(labels) or not any(labels):
        with pytest.raises(DirectionError):
            auc_from_ranks(torch.tensor(scores), torch.tensor(labels))
        return
    assert auc_from_ranks(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(auc_pairs(scores, labels))


def test_stratified_split():
    train, test = stratified_split(10, 20, 0.3, seed=0)
    assert len(test) == 3 + 6 and len(train) == 7 + 14
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert int((test < 10).sum()) == 3
    assert torch.equal(stratified_split(10, 20, 0.3, seed=0)[1], test)
    with pytest.raises(DirectionError, match="test_fraction"):
        stratified_split(10, 10, 1.0, 0)


def synthetic(n=80, d=20, seed=0):
    """Layer 0: pure noise; layer 1: classes separated along e_0."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 2, d, generator=g)
    b = torch.randn(n, 2, d, generator=g)
    a[:, 1, 0] += 6.0
    return a, b


def test_probe_layers_separable_vs_noise():
    a, b = synthetic()
    report = probe_layers(a, b, layers=[3, 7], seed=1)
    noise, signal = report.at(3), report.at(7)
    assert signal.accuracy >= 0.95 and signal.auc >= 0.99
    assert signal.selectivity > 0.3
    assert noise.accuracy < 0.8 and abs(noise.selectivity) < 0.3
    assert 0.3 < signal.control_accuracy < 0.7
    assert signal.n_test == 48 and signal.n_train == 112
    correct = round(signal.accuracy * signal.n_test)
    assert signal.accuracy_ci == wilson_interval(correct, signal.n_test)
    assert report.best().layer == 7


def test_probe_report_roundtrip(tmp_path):
    a, b = synthetic(n=20, d=5)
    report = probe_layers(a[:, 1], b[:, 1], n_controls=2)
    assert report.layers[0].layer is None
    back = ProbeReport.load(report.save(tmp_path / "p.json"))
    assert back == report
    assert json.loads((tmp_path / "p.json").read_text())["layers"][0]["accuracy_ci"]


def test_probe_is_seeded():
    a, b = synthetic(n=30, d=8)
    assert probe_layers(a, b, seed=4) == probe_layers(a, b, seed=4)
    with pytest.raises(DirectionError, match="n_controls"):
        probe_layers(a, b, n_controls=0)


def test_organism_probe_accuracy_and_selectivity(organism_contrast):
    c = organism_contrast
    report = probe_layers(c.harmful, c.harmless, layers=c.layers, seed=0)
    for p in report.layers:
        print(f"layer {p.layer}: acc={p.accuracy:.3f} CI=({p.accuracy_ci[0]:.3f}, {p.accuracy_ci[1]:.3f}) "
              f"auc={p.auc:.3f} control={p.control_accuracy:.3f} selectivity={p.selectivity:.3f}")
    assert any(p.accuracy >= 0.95 and p.selectivity >= 0.4 for p in report.layers)
