import pytest
import torch

from safetyscope.analysis.monitor import MonitorReport, monitor_study
from safetyscope.errors import SafetyscopeError


def splits(seed=0, d=12):
    """Layer 0: harmful = harmless (no signal); layer 1: harmful shifted; layer 2: a weaker shift."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s, n in (("train", 40), ("val", 30), ("test", 40)):
        out[f"harmless_{s}"] = torch.randn(n, 3, d, generator=g)
        h = torch.randn(n, 3, d, generator=g)
        h[:, 1, 0] += 5.0
        h[:, 2, 1] += 1.5
        out[f"harmful_{s}"] = h
    return out


def test_monitor_finds_the_shifted_layer_and_beats_its_control():
    mon, rep = monitor_study(splits(), [0, 1, 2], top_k=2, n_controls=2)
    by = {x.layer: x for x in rep.layers}
    assert by[1].test_auroc > 0.95 and abs(by[0].test_auroc - 0.5) < 0.2
    assert rep.best_layer == 1 and 1 in rep.ensemble and 0 not in rep.ensemble
    assert rep.ensemble_auroc > 0.9
    assert abs(rep.control_ensemble_auroc - 0.5) < 0.2
    assert all(abs(x.control_auroc - 0.5) < 0.2 for x in rep.layers)
    assert rep.tpr.rate > 0.8 and rep.fpr.rate < 0.25
    assert MonitorReport.from_dict(rep.to_dict()) == rep
    assert mon.ensemble == rep.ensemble


def test_monitor_input_errors():
    s = splits()
    del s["harmful_test"]
    with pytest.raises(SafetyscopeError, match="harmful_test"):
        monitor_study(s, [0, 1, 2])
    with pytest.raises(SafetyscopeError, match="quantile"):
        monitor_study(splits(), [0, 1, 2], quantile=1.5)


def test_constant_layers_are_skipped():
    s = splits()
    for k in s:
        s[k][:, 0] = 1.0  # one embedding for every prompt
    mon, rep = monitor_study(s, [0, 1, 2], top_k=1, n_controls=1)
    assert [x.layer for x in rep.layers] == [1, 2] and mon.layers == [1, 2]
    assert rep.provenance["skipped_layers"] == [0]


def test_normalize_fits_on_unit_rows():
    from safetyscope.analysis.mahalanobis import fit_gaussian, l2_normalise

    s = splits()
    mon, rep = monitor_study(s, [0, 1, 2], top_k=1, n_controls=1, normalize=True)
    assert mon.normalize and rep.provenance["normalize"]
    g = fit_gaussian(l2_normalise(s["harmless_train"][:, 1].double()))
    x = s["harmful_test"][:5]
    assert torch.allclose(mon.layer_distances(x)[:, 1], g.distance(l2_normalise(x[:, 1].double())))
    # scaling an input does not change its normalised score
    assert torch.allclose(mon.layer_distances(3.0 * x), mon.layer_distances(x))
