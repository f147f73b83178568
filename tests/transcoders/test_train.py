"""Transcoder rows, training, metrics and the SAELens round trip on a tiny Llama."""

from __future__ import annotations

import pytest
import torch

from safetyscope.activations import Site, record
from safetyscope.errors import ConfigError, OptionError, SafetyscopeError
from safetyscope.sae import SAEConfig, SparseAutoencoder, TrainConfig, load_sae, save_sae
from safetyscope.sae.corpus import TokenCorpus, TokenSeq
from safetyscope.transcoders import (
    layer_metrics,
    replacement_metrics,
    stream_mlp_rows,
    train_transcoder,
    transcoder_config,
    transcoder_layer,
)


def _corpus(n: int = 60, seed: int = 0) -> TokenCorpus:
    g = torch.Generator().manual_seed(seed)
    seqs = []
    for _ in range(n):
        length = int(torch.randint(6, 14, (1,), generator=g))
        ids = tuple([1, *torch.randint(3, 97, (length - 1,), generator=g).tolist()])
        seqs.append(TokenSeq(ids, tuple(range(1, length))))
    return TokenCorpus(f"random:{n}:{seed}", seqs)


@pytest.fixture(scope="module")
def rows(tiny_lms):
    return stream_mlp_rows(tiny_lms["llama"], _corpus(), [0, 1, 2], max_batch_tokens=200)


def test_rows_match_the_mlp_out_site(llama, rows):
    corpus = _corpus()
    seq = corpus.seqs[0]
    got = {}
    with (
        torch.no_grad(),
        record(llama.arch, [Site(1, "mlp_out")], lambda s, t: got.__setitem__(s, t), stop_early=False),
    ):
        llama.model(input_ids=torch.tensor([seq.ids]))
    index = rows.outputs[1].shard_index(0)
    mine = [r for r in range(len(index)) if int(index[r, 0]) == 0]
    order = sorted(mine, key=lambda r: int(index[r, 1]))
    assert torch.allclose(rows.outputs[1].all_rows()[order], got[Site(1, "mlp_out")][0, 1:], atol=1e-5)
    assert rows.tokens == corpus.n_tokens
    assert torch.equal(rows.inputs[0].shard_index(0), rows.outputs[2].shard_index(0))
    with pytest.raises(SafetyscopeError, match=r"within 0\.\.2"):
        stream_mlp_rows(llama, corpus, [3])


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_training_beats_the_random_control_and_is_seeded(rows, arch):
    x, y = rows.inputs[1].all_rows(), rows.outputs[1].all_rows()
    cfg = TrainConfig(architecture=arch, d_sae=128, k=8, steps=300, batch_size=64, lr=3e-3, l0_coeff=1e-3)
    res = train_transcoder(x, y, 1, cfg)
    m = layer_metrics(res.transcoder, x, y, 1)
    rand = SparseAutoencoder.random(transcoder_config(x.shape[1], 128, 1, k=8))
    control = layer_metrics(rand, x, y, 1)
    assert m.fvu < 0.75 and control.fvu > 0.9, (m.fvu, control.fvu)
    assert m.l0 <= 8.0 + 1e-9 if arch == "topk" else m.l0 < 64
    again = train_transcoder(x, y, 1, cfg)
    assert torch.equal(again.transcoder.W_dec, res.transcoder.W_dec)
    assert res.tokens_per_second > 0 and len(res.history) >= 2


def test_bad_training_input(rows):
    x, y = rows.inputs[0].all_rows(), rows.outputs[0].all_rows()
    with pytest.raises(OptionError, match="not one of"):
        train_transcoder(x, y, 0, TrainConfig(architecture="standard"))
    with pytest.raises(OptionError, match="equal"):
        train_transcoder(x, y[:, :3], 0, TrainConfig())
    with pytest.raises(OptionError, match="fewer than one batch"):
        train_transcoder(x[:10], y[:10], 0, TrainConfig(batch_size=64))


def test_replacement_metrics_on_the_organism(organism_dir):
    from safetyscope import load_model
    from safetyscope.sae import load_corpus

    lm = load_model(str(organism_dir))
    org_rows = stream_mlp_rows(lm, load_corpus(lm, "organism:120"), range(lm.n_layers))
    cfg = TrainConfig(d_sae=256, k=16, steps=250, batch_size=128, lr=3e-3)
    tcs = {
        la: train_transcoder(
            org_rows.inputs[la].all_rows(), org_rows.outputs[la].all_rows(), la, cfg
        ).transcoder
        for la in range(lm.n_layers)
    }
    means = {la: org_rows.outputs[la].all_rows().mean(0) for la in tcs}
    corpus = load_corpus(lm, "organism:30", seed=1)
    m = replacement_metrics(lm, tcs, corpus, means)
    assert m.tokens == sum(len(s.ids) - 1 for s in corpus.seqs)
    assert m.top1_agreement_ci[0] <= m.top1_agreement <= m.top1_agreement_ci[1]
    assert m.top1_agreement > m.control_mean_ablation_top1_agreement + 0.2
    assert m.kl < m.control_mean_ablation_kl
    assert 0.5 < m.ce_loss_recovered <= 1.05 and m.ce_loss_recovered_vs_mean > 0.5


def test_saelens_round_trip(rows, tmp_path):
    cfg = TrainConfig(d_sae=64, k=4, steps=20, batch_size=64)
    tcs = {2: train_transcoder(rows.inputs[2].all_rows(), rows.outputs[2].all_rows(), 2, cfg).transcoder}
    folder = save_sae(tcs[2], tmp_path / "tc2")
    back = load_sae(folder)
    assert transcoder_layer(back) == 2 and not back.cfg.apply_b_dec_to_input
    x = rows.inputs[2].all_rows()[:5]
    assert torch.allclose(back(x), tcs[2](x), atol=1e-6)
    with pytest.raises(ConfigError, match="not a per-layer transcoder"):
        transcoder_layer(SparseAutoencoder.random(SAEConfig("topk", 32, 8, k=2)))
