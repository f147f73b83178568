import pytest
import torch
import torch.nn.functional as F

from safetyscope.directions import DirectionError, fit_logistic


def data(n=200, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 5 + 10
    w = torch.tensor([1.0, -2.0, 0.5, 0, 0, 0], dtype=torch.float64)[:d]
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid((x - 10) @ w / 5)).double()
    return x, y


def test_fit_reaches_the_regularised_optimum():
    x, y = data()
    fit = fit_logistic(x, y, l2=0.05)
    centre = x.mean(0)
    scale = float((x - centre).pow(2).mean().sqrt())
    w = (fit.weight * scale).requires_grad_(True)  # back to the standardised problem
    b = torch.tensor(fit.bias + float(centre @ fit.weight), dtype=torch.float64, requires_grad=True)
    z = (x - centre) / scale
    loss = F.binary_cross_entropy_with_logits(z @ w + b, y) + 0.5 * 0.05 * (w @ w)
    loss.backward()
    assert float(w.grad.abs().max()) < 1e-5 and float(b.grad.abs()) < 1e-5
    assert fit.loss == pytest.approx(float(loss.detach()))


def test_fit_is_deterministic_and_predicts():
    x, y = data()
    a, b = fit_logistic(x, y), fit_logistic(x, y)
    assert torch.equal(a.weight, b.weight) and a.bias == b.bias
    assert a.train_accuracy > 0.7
    assert torch.equal(a.predict(x), a.proba(x) > 0.5)


def test_fit_inside_inference_mode_and_restores_threads():
    x, y = data()
    threads = torch.get_num_threads()
    with torch.inference_mode():
        fit = fit_logistic(x, y.bool())
    assert torch.get_num_threads() == threads
    assert fit.weight.shape == (6,)


def test_errors():
    x, y = data()
    with pytest.raises(DirectionError, match="both classes"):
        fit_logistic(x, torch.ones(200))
    with pytest.raises(DirectionError, match="0/1"):
        fit_logistic(x, y * 2)
    with pytest.raises(DirectionError, match=r"x \[n, d\]"):
        fit_logistic(x, y[:10])
    with pytest.raises(DirectionError, match="l2"):
        fit_logistic(x, y, l2=-1)
