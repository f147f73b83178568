"""Patching exactness on every supported family: identity patches, full restores, batched == naive."""

import pytest
import torch

from safetyscope.causal import patching_sweep
from safetyscope.model.tiny import TINY_FAMILIES

CLEAN = ["abc defg", "jkm nopq"]
CORRUPT = ["xyz defg", "tuv nopq"]
RAW = dict(chat=False)  # short raw prompts keep the sweeps small
COMPONENTS = "resid_pre,resid_post,attn_out,mlp_out,heads"


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_clean_into_clean_changes_nothing(tiny_lms, family):
    lm = tiny_lms[family]
    res = patching_sweep(lm, CLEAN, CLEAN, components=COMPONENTS, positions="all", metric="logit_diff",
                         answer="a", wrong="b", **RAW)
    assert res.clean_metric == pytest.approx(res.corrupted_metric, abs=1e-6)
    assert max(abs(s.value - res.clean_metric) for s in res.scores) <= 1e-5
    assert {s.component for s in res.scores} == set(COMPONENTS.split(","))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_patching_every_position_restores_clean_exactly(tiny_lms, family):
    lm = tiny_lms[family]
    res = patching_sweep(lm, CLEAN, CORRUPT, components="resid_pre,resid_post", positions="all", joint=True,
                         metric="logit_diff", answer="a", wrong="b", **RAW)
    assert abs(res.clean_metric - res.corrupted_metric) > 1e-4  # the corruption matters
    for s in res.scores:
        assert abs(s.value - res.clean_metric) <= 1e-5, (s.component, s.layer)
        assert s.recovery == pytest.approx(1.0, abs=1e-3)
    # noising with every position replaced gives the corrupted run back
    noised = patching_sweep(lm, CLEAN, CORRUPT, components="resid_pre", positions="all", joint=True,
                            metric="kl", mode="noise", **RAW)
    assert max(abs(s.value - noised.corrupted_metric) for s in noised.scores) <= 1e-5


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_batched_sweep_equals_naive_loop(tiny_lms, family, monkeypatch):
    import safetyscope.causal.patching as patching

    lm = tiny_lms[family]
    kw = dict(components=COMPONENTS, layers=[1], positions="all", metric="kl", token_budget=64, **RAW)
    fast = patching_sweep(lm, CLEAN, CORRUPT, **kw)  # tiny model: one prefix bin per layer
    monkeypatch.setattr(patching, "FORWARD_OVERHEAD_FLOPS", 0.0)  # bins of one token: KV-cached prefixes
    cached = patching_sweep(lm, CLEAN, CORRUPT, **kw)
    slow = patching_sweep(lm, CLEAN, CORRUPT, batched=False, **kw)
    assert fast.provenance["forward_passes"] < cached.provenance["forward_passes"] < slow.provenance["forward_passes"]
    assert slow.provenance["forward_passes"] == len(slow.scores)
    for run in (fast, cached):
        diff = torch.tensor([a.value - b.value for a, b in zip(run.scores, slow.scores, strict=True)]).abs().max()
        assert diff <= 1e-5
    # some cell moves the metric away from the corrupted run (relative: random tiny models are near-uniform)
    assert fast.corrupted_metric > 0
    assert max(abs(s.value - fast.corrupted_metric) for s in fast.scores) > 1e-3 * fast.corrupted_metric


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_all_heads_of_a_layer_equal_attn_out(tiny_lms, family):
    """Patching every head's slice (pre-o_proj) at a position equals patching that layer's attn_out there."""
    from safetyscope.causal.patch_spec import head_layout, in_features

    lm = tiny_lms[family]
    n_heads, _ = head_layout(lm.model, in_features(lm.arch.attn_out(0), lm.arch.map.writer_weight_layout))
    kw = dict(positions="last", metric="kl", layers=[1], **RAW)
    attn = patching_sweep(lm, CLEAN, CORRUPT, components="attn_out", joint=True, **kw)
    heads = patching_sweep(lm, CLEAN, CORRUPT, components="heads", joint=True, **kw)
    one_by_one = [s.value for s in heads.scores]
    assert len(one_by_one) == n_heads
    # all heads at once: a sweep over one "cell" that writes the whole attn_z vector
    from safetyscope.causal import Corruption, make_metric
    from safetyscope.causal.patching_prepare import prepare

    met = make_metric("kl", lm.tokenizer)
    p = prepare(lm, CLEAN, CORRUPT, components="heads", layers=[1], positions="last", heads=None, metric=met,
                mode="denoise", corruption=Corruption(), joint=True, token_budget=4096, chat=False)
    # merge the per-head cells into one row per prompt by patching all heads' slices together
    from safetyscope.causal.patching_runner import SiteWrites, run_rows

    site = p.targets[0].site
    n = len(p.target_ids)
    rows, toks, heads_idx, vals = [], [], [], []
    for i in range(n):
        for h in range(n_heads):
            rows.append(i)
            toks.append(p.slots[i][0])
            heads_idx.append(h)
            vals.append(p.source[site][i, p.slots[i][0], h * p.d_head:(h + 1) * p.d_head])
    w = SiteWrites(site, torch.tensor(rows), torch.tensor(toks), torch.stack(vals), torch.tensor(heads_idx))
    logits, _ = run_rows(lm, p.target_ids, [w], p.d_head)
    all_heads = float(met.score(logits, p.clean_logits).mean())
    assert all_heads == pytest.approx(attn.scores[0].value, abs=1e-5)
