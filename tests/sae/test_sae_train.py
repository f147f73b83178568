"""Trainers: determinism, sparsity constraints per architecture, recovery of a planted dictionary."""

from __future__ import annotations

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import OptionError
from safetyscope.sae import ActivationStore, TrainConfig, lr_factor, reconstruction_metrics, train_sae
from safetyscope.sae.losses import aux_topk_loss, jumprelu_ste, step_ste

SITE = Site(0, "resid_post")


def planted_store(n: int = 4096, d: int = 16, n_atoms: int = 48, active: int = 3, seed: int = 0) -> ActivationStore:
    """Rows that are sums of ``active`` random atoms (of a planted dictionary) with positive weights, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(n_atoms, generator=g)[:active] for _ in range(n)])
    w = torch.rand(n, active, generator=g) * 2 + 0.5
    rows = torch.einsum("na,nad->nd", w, atoms[idx]) * 5 + 3.0
    return ActivationStore(SITE, d, list(rows.split(1024)), [1024] * (n // 1024))


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup_frac=0.1, min_lr_frac=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(99, cfg) == pytest.approx(0.1, abs=0.01)
    assert all(lr_factor(i, cfg) >= lr_factor(i + 1, cfg) for i in range(10, 99))


def test_bad_config():
    with pytest.raises(OptionError, match="--arch"):
        TrainConfig(architecture="gated")
    with pytest.raises(OptionError, match="k"):
        TrainConfig(architecture="topk", d_sae=8, k=9)


def test_seeded_determinism():
    store = planted_store(n=1024)
    cfg = TrainConfig(architecture="topk", d_sae=32, k=4, steps=30, batch_size=64, buffer_rows=256)
    a, b = train_sae(store, cfg, progress=False), train_sae(store, cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.sae.state_tensors().values(), b.sae.state_tensors().values(), strict=True))
    c = train_sae(store, TrainConfig(**{**cfg.__dict__, "seed": 1}), progress=False)
    assert not torch.equal(a.sae.W_dec, c.sae.W_dec)


@pytest.mark.parametrize(("arch", "extra", "max_fvu", "max_l0"), [
    ("topk", {"k": 4}, 0.2, 4.0),
    ("batchtopk", {"k": 4}, 0.25, 6.0),
    ("jumprelu", {"l0_coeff": 0.01}, 0.15, 12.0),
    ("standard", {"l1_coeff": 0.003}, 0.1, 32.0),
])
def test_recovers_planted_dictionary(arch, extra, max_fvu, max_l0):
    store = planted_store()
    cfg = TrainConfig(architecture=arch, d_sae=64, steps=400, batch_size=128, lr=1e-2, buffer_rows=1024, **extra)
    res = train_sae(store, cfg, progress=False)
    m = reconstruction_metrics(res.sae, store)
    untrained = reconstruction_metrics(train_sae(store, TrainConfig(**{**cfg.__dict__, "steps": 1}), progress=False).sae, store)
    assert untrained.fvu > 2 * max_fvu  # the control: one step of training is far from it
    assert m.fvu < max_fvu and m.l0 <= max_l0, (m.fvu, m.l0)
    assert res.history[0]["mse"] > res.history[-1]["mse"]
    if arch == "standard":  # unit-norm decoder rows in training units; folding divides them by the scale
        norms = res.sae.W_dec.norm(dim=1) * res.scale
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    if arch == "batchtopk":
        assert res.sae.cfg.architecture == "jumprelu"
        assert res.sae.threshold is not None and float(res.sae.threshold.std()) == 0.0
        assert float(res.sae.threshold[0]) > 0
    if arch == "jumprelu":
        assert res.sae.threshold is not None and float(res.sae.threshold.mean()) != pytest.approx(cfg.init_threshold)


def test_aux_loss_formula_and_gradient_reach_only_dead_latents():
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(6, 10, generator=g, requires_grad=True)
    w_dec = torch.randn(10, 4, generator=g, requires_grad=True)
    err = torch.randn(6, 4, generator=g)
    dead = torch.zeros(10, dtype=torch.bool)
    dead[[1, 4, 7]] = True
    loss = aux_topk_loss(pre, err, w_dec, dead, k_aux=2)
    naive = 0.0
    for r in range(6):
        vals = {i: float(pre[r, i].detach()) for i in (1, 4, 7)}
        top = sorted(vals, key=vals.get, reverse=True)[:2]
        e_hat = sum(max(vals[i], 0.0) * w_dec[i] for i in top)
        naive += float(((err[r] - e_hat) ** 2).mean())
    assert float(loss) == pytest.approx(naive, rel=1e-5)
    loss.backward()
    assert pre.grad is not None and w_dec.grad is not None
    assert float(pre.grad[:, ~dead].abs().sum()) == 0.0 and float(w_dec.grad[~dead].abs().sum()) == 0.0
    assert float(w_dec.grad[dead].abs().sum()) > 0
    assert float(aux_topk_loss(pre, err, w_dec, torch.zeros(10, dtype=torch.bool), 2)) == 0.0


def test_ste_gradients_match_the_kernel_formula():
    z = torch.tensor([[0.10, 0.52, 0.49, 0.9]])
    theta = torch.full((4,), 0.5, requires_grad=True)
    step_ste(z, theta, 0.1).sum().backward()
    # rectangle kernel of width 0.1 around theta: entries 1 and 2 are inside, d/dtheta H = -1/eps
    assert theta.grad.tolist() == pytest.approx([0.0, -10.0, -10.0, 0.0])
    theta.grad = None
    out = jumprelu_ste(z, theta, 0.1)
    assert out[0].tolist() == pytest.approx([0.0, 0.52, 0.0, 0.9])
    out.sum().backward()
    assert theta.grad.tolist() == pytest.approx([0.0, -5.0, -5.0, 0.0])  # -(theta/eps) K


def test_resampling_changes_dead_latents():
    store = planted_store(n=2048)
    cfg = dict(architecture="standard", d_sae=128, steps=200, batch_size=128, buffer_rows=512, l1_coeff=0.05,
               dead_tokens=500)
    plain = train_sae(store, TrainConfig(**cfg), progress=False)
    res = train_sae(store, TrainConfig(**cfg, resample_every=50), progress=False)
    assert reconstruction_metrics(res.sae, store).dead_fraction <= reconstruction_metrics(plain.sae, store).dead_fraction
