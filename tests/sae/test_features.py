"""Feature ranking (composite score vs a naive loop, planted latent, shuffled null), contexts, cosines."""

from __future__ import annotations

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.sae import SAEConfig, SparseAutoencoder, load_corpus, stream_activations
from safetyscope.sae.features import (
    FeatureRanking,
    composite_scores,
    decoder_cosines,
    rank_latents,
    top_contexts,
)


def test_composite_score_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(30, 12, generator=g), torch.rand(25, 12, generator=g)
    score, mag, cons = composite_scores(a, b)
    for i in range(12):
        m = abs(float(a[:, i].mean() - b[:, i].mean()))
        c = float((a[:, i] > b[:, i].mean()).float().mean())
        assert float(mag[i]) == pytest.approx(m, rel=1e-5)
        assert float(cons[i]) == pytest.approx(c)
        assert float(score[i]) == pytest.approx(m * c, rel=1e-5)


def test_planted_latent_ranks_first_and_beats_shuffled_null():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(40, 50, generator=g).relu(), torch.rand(40, 50, generator=g).relu()
    a[:, 17] += 2.0
    sae = SparseAutoencoder.random(SAEConfig("standard", 8, 50), seed=0)
    direction = sae.W_dec[17].detach().clone()
    r = rank_latents(a, b, top_n=5, n_shuffles=10, sae=sae, direction=direction)
    assert r.top[0].latent == 17 and r.significant == [17]
    assert r.top[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert r.cosine_null_p99 is not None and r.cosine_null_p99 < 1.0
    assert FeatureRanking.from_dict(r.to_dict()) == r
    null_only = rank_latents(b[:20], b[20:], n_shuffles=10)  # same distribution: nothing is significant
    assert len(null_only.significant) <= 1
    cos = decoder_cosines(sae, direction)
    assert cos.shape == (50,) and float(cos.abs().max()) == pytest.approx(1.0)


def test_top_contexts_find_the_maximum(llama, tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(f"sample text number {i} here" for i in range(5)))
    corpus = load_corpus(llama, f"text:{tmp_path / 't.txt'}")
    site = Site(1, "resid_post")
    store = stream_activations(llama, corpus, site, progress=False)
    sae = SparseAutoencoder.random(SAEConfig("standard", llama.d_model, 16), seed=0)
    got = top_contexts(llama, sae, store, corpus, [3, 5], n=2)
    with torch.no_grad():
        f = sae.encode(store.all_rows())
    assert got[3][0].activation == pytest.approx(float(f[:, 3].max()), rel=1e-5)
    assert got[3][0].activation >= got[3][1].activation
    assert "[[" in got[5][0].text
