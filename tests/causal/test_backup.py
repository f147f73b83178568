"""Backup behaviour on tiny models: direct effects against the naive formula, the compensated share."""

import pytest
import torch
from torch import nn

from safetyscope import load_model
from safetyscope.causal import PatchingError, make_metric, patching_sweep
from safetyscope.causal.backup import Component, backup_behaviour, components_from_patching
from safetyscope.model.tiny import save_tiny

PROMPTS = ["abc defg", "jkm nopq", "rst uvwx"]


@pytest.fixture(scope="module")
def linear_llama(tmp_path_factory):
    lm = load_model(save_tiny("llama", tmp_path_factory.mktemp("bk") / "llama"))
    lm.model.set_submodule(lm.arch.map.final_norm, nn.Identity())
    lm.arch.final_norm = lm.model.get_submodule(lm.arch.map.final_norm)
    return lm


def test_direct_effects_match_the_linear_formula_and_ablated_ones_vanish(linear_llama):
    lm = linear_llama
    met = make_metric("logit_diff", lm.tokenizer, "a", "b")
    res = backup_behaviour(lm, PROMPTS, met, ablate=[Component(1, "mlp")], chat=False)
    # naive: with an identity final norm, DE(c) = (o_c - mu_c) . (W_U[a] - W_U[b]), averaged over prompts
    from safetyscope.activations import Site, record

    w = lm.arch.unembed.weight
    u = (w[met.answer_id] - w[met.wrong_id]).double()
    sites = [Site(layer, p) for layer in range(lm.n_layers) for p in ("attn_out", "mlp_out")]
    outs, last = {s: [] for s in sites}, {s: [] for s in sites}
    for text in PROMPTS:
        ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
        seen = {}

        def grab(s, h, seen=seen):
            seen[s] = h[0].detach().double()

        with record(lm.arch, sites, grab, stop_early=False), torch.no_grad():
            lm.model(input_ids=ids)
        for s in sites:
            outs[s].append(seen[s])
            last[s].append(seen[s][-1])
    for j, s in enumerate(sites):
        mu = torch.cat(outs[s]).mean(0)
        naive = float(torch.stack([(o - mu) @ u for o in last[s]]).mean())
        assert res.de_before[j] == pytest.approx(naive, abs=1e-4)
    j = res.components.index("L1.mlp")
    assert res.de_after[j] == pytest.approx(0.0, abs=1e-5)  # an ablated component writes its mean


def test_compensated_share_follows_its_formula(llama):
    met = make_metric("logit_diff", llama.tokenizer, "a", "b")
    res = backup_behaviour(llama, PROMPTS, met, k=1, chat=False, control_seed=1)
    assert len(res.ablated) == 1 and res.ablated[0] in res.components
    single = res.provenance["single_ablation_total_effects"]
    assert res.ablated[0] == max(single, key=lambda c: abs(single[c]))
    assert res.total_effect == pytest.approx(single[res.ablated[0]], abs=1e-6)
    s = 1.0 if res.total_effect >= 0 else -1.0
    comp = sum(
        max(0.0, s * (b - a))
        for c, a, b in zip(res.components, res.de_before, res.de_after, strict=True)
        if c not in res.ablated
    )
    assert res.compensation == pytest.approx(comp, abs=1e-9)
    assert res.compensated_share == pytest.approx(comp / abs(res.total_effect), rel=1e-9)
    assert res.control["ablated"] and res.control["ablated"][0] not in res.ablated
    assert res.to_dict()["control"]["compensated_share"] is not None


def test_components_and_errors(llama):
    assert Component.parse("L1.attn", 2) == Component(1, "attn") == Component.parse("a1", 2)
    with pytest.raises(PatchingError, match="attn or mlp"):
        Component.parse("L9.mlp", 2)
    with pytest.raises(PatchingError, match="Cannot parse"):
        Component.parse("mlp-one", 2)
    sweep = patching_sweep(
        llama,
        PROMPTS,
        ["xbc defg", "tkm nopq", "ast uvwx"],
        components="attn_out,mlp_out",
        positions="last",
        metric="kl",
        chat=False,
    )
    top = components_from_patching(sweep, 2)
    assert len(top) == 2 and all(isinstance(c, Component) for c in top)
    with pytest.raises(PatchingError, match="no attn_out or mlp_out"):
        components_from_patching(
            patching_sweep(
                llama, PROMPTS, None, corruption="zero", layers=[0], positions="last", metric="kl", chat=False
            ),
            2,
        )
