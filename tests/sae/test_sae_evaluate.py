"""Evaluation: FVU / L0 against naive formulas, CE recovered is 1 for a perfect SAE and 0 for the floor."""

from __future__ import annotations

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.sae import (
    SAEConfig,
    SparseAutoencoder,
    evaluate_sae,
    load_corpus,
    reconstruction_metrics,
    stream_activations,
)

SITE = Site(1, "resid_post")


def identity_sae(d: int) -> SparseAutoencoder:
    """ReLU SAE with latents [x, -x]: reconstructs any input exactly."""
    sae = SparseAutoencoder(SAEConfig("standard", d, 2 * d, apply_b_dec_to_input=False, site=SITE.key))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
    return sae


def test_reconstruction_metrics_match_naive_formulas():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    sae = SparseAutoencoder.random(SAEConfig("topk", 6, 20, k=3), seed=1)
    m = reconstruction_metrics(sae, x, batch_size=64)
    with torch.no_grad():
        f, x_hat = sae.encode(x), sae(x)
    fvu = float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert m.fvu == pytest.approx(fvu, rel=1e-5)
    assert m.l0 == pytest.approx(float((f > 0).sum(-1).float().mean()))
    freq = (f > 0).float().mean(0)
    assert m.dead_fraction == pytest.approx(float((freq == 0).float().mean()))
    assert m.dense_fraction == pytest.approx(float((freq > 0.1).float().mean()))
    assert reconstruction_metrics(identity_sae(6), x).fvu == pytest.approx(0.0, abs=1e-10)


def test_ce_recovered_perfect_and_floor(llama, tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(f"line {i} of some text with words" for i in range(6)))
    corpus = load_corpus(llama, f"text:{tmp_path / 't.txt'}")
    store = stream_activations(llama, corpus, SITE, progress=False)
    perfect = evaluate_sae(llama, identity_sae(llama.d_model), SITE, store, corpus)
    assert perfect.ce_sae == pytest.approx(perfect.ce_clean, abs=1e-5)
    assert perfect.ce_loss_recovered == pytest.approx(1.0, abs=1e-4)
    assert perfect.fvu == pytest.approx(0.0, abs=1e-8)
    # an SAE that outputs the mean (no latents): recovers exactly nothing against mean ablation
    mean_sae = SparseAutoencoder(SAEConfig("standard", llama.d_model, 4, site=SITE.key))
    with torch.no_grad():
        mean_sae.b_dec.copy_(store.mean().float())
    floor = evaluate_sae(llama, mean_sae, SITE, store, corpus)
    assert floor.ce_loss_recovered_vs_mean == pytest.approx(0.0, abs=1e-4)
    assert floor.fvu == pytest.approx(1.0, abs=1e-4) and floor.l0 == 0.0 and floor.dead_fraction == 1.0
    assert floor.ce_tokens == perfect.ce_tokens > 0
