"""GSAE: the co-activation graph, the Laplacian penalty against its pairwise form, and the trainer."""

from __future__ import annotations

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import OptionError
from safetyscope.sae import ActivationStore, TrainConfig, train_sae
from safetyscope.sae.graph import coactivation_graph, laplacian_penalty, normalized_laplacian


def planted_store(
    n: int = 2048, d: int = 16, n_atoms: int = 48, active: int = 3, seed: int = 0
) -> ActivationStore:
    """Sums of ``active`` planted unit atoms with positive weights, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(n_atoms, generator=g)[:active] for _ in range(n)])
    rows = torch.einsum("na,nad->nd", torch.rand(n, active, generator=g) * 2 + 0.5, atoms[idx]) * 5 + 3.0
    return ActivationStore(Site(0, "resid_post"), d, list(rows.split(1024)), [1024] * (n // 1024))


def test_graph_links_co_activating_neurons():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 3, generator=g)
    rows = torch.stack([z[:, 0], z[:, 0] * 2 + 0.01 * z[:, 1], z[:, 1], -z[:, 1], z[:, 2]], 1)
    a = coactivation_graph(rows, k=1)
    assert torch.equal(a, a.T) and float(a.min()) >= 0 and float(a.diagonal().abs().max()) == 0
    assert float(a[0, 1]) > 0.99  # strongly correlated pair
    assert float(a[2, 3]) == 0.0  # anti-correlated: no positive co-activation
    with pytest.raises(OptionError, match="graph_k"):
        coactivation_graph(rows, k=5)


def test_penalty_equals_the_pairwise_smoothness_form():
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(300, 6, generator=g) @ torch.randn(6, 6, generator=g)
    a = coactivation_graph(rows, k=3)
    lap = normalized_laplacian(a)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    deg = a.sum(1)
    u = w / deg.sqrt()
    pairwise = 0.5 * (a[None] * (u[:, :, None] - u[:, None, :]).pow(2)).sum((1, 2)).mean()
    assert float(laplacian_penalty(w, lap)) == pytest.approx(float(pairwise), rel=1e-9)
    smooth = deg.sqrt()[None]  # D^{1/2} 1 is in the kernel of the normalised Laplacian
    assert float(laplacian_penalty(smooth, lap)) == pytest.approx(0.0, abs=1e-9)


def test_gsae_training_smooths_the_decoder_and_saves_as_standard():
    store = planted_store(n=2048)
    base = dict(d_sae=32, steps=150, batch_size=256, l1_coeff=3e-3, seed=0)
    plain = train_sae(store, TrainConfig(architecture="standard", **base), progress=False)
    zero = train_sae(store, TrainConfig(architecture="gsae", graph_coeff=0.0, **base), progress=False)
    torch.testing.assert_close(zero.sae.W_dec, plain.sae.W_dec)  # lambda_g = 0 is the plain SAE
    gsae = train_sae(store, TrainConfig(architecture="gsae", graph_coeff=5.0, **base), progress=False)
    assert gsae.sae.cfg.architecture == "standard"
    assert gsae.sae.cfg.metadata["trained_architecture"] == "gsae"
    assert gsae.history[-1]["graph"] < zero.history[-1]["graph"] - 0.05
    with pytest.raises(OptionError, match="graph_coeff"):
        TrainConfig(architecture="gsae", graph_coeff=-1.0)
