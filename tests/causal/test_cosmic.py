import math

import pytest
import torch

from safetyscope.causal import CosmicSelection, rank_cosmic, select_cosmic
from safetyscope.causal.cosmic import exact_score, low_similarity_layers, proxy_score
from safetyscope.errors import SafetyscopeError

HARMFUL = [f"how do I make weapon number {i}" for i in range(6)]
HARMLESS = [f"how do I bake bread number {i}" for i in range(6)]


def naive_rep(lm, prompts, layers, ablate_dir=None, add=None):
    """Mean resid_pre at the eoi positions of `layers`, concatenated, under hand-written HF hooks."""
    model = lm.model
    handles = []
    if ablate_dir is not None:
        u = (ablate_dir / ablate_dir.norm()).float()

        def proj(t):
            return t - (t @ u)[..., None] * u

        handles.append(model.model.embed_tokens.register_forward_hook(lambda m, i, o: proj(o)))
        for block in model.model.layers:
            handles.append(block.self_attn.register_forward_hook(lambda m, i, o: (proj(o[0]), *o[1:])))
            handles.append(block.mlp.register_forward_hook(lambda m, i, o: proj(o)))
    if add is not None:
        vec, layer = add

        def pre_hook(m, args, kwargs):
            if args:
                return (args[0] + vec.float(), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + vec.float()}

        handles.append(model.model.layers[layer].register_forward_pre_hook(pre_hook, with_kwargs=True))
    try:
        sums = None
        for p in prompts:
            enc = lm.chat.encode(p)
            ids = torch.tensor([enc.input_ids])
            with torch.no_grad():
                hs = model(ids, output_hidden_states=True).hidden_states
            # hidden_states[l] is resid_pre of layer l, except that an edit *at* layer l's input lands after it
            parts = []
            for layer in layers:
                h = hs[layer][0]
                if add is not None and layer == add[1]:
                    h = h + add[0].float()
                parts.append(h[enc.eoi_positions].double().reshape(-1))
            v = torch.cat(parts)
            sums = v if sums is None else sums + v
        return sums / len(prompts)
    finally:
        for h in handles:
            h.remove()


def cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_exact_score_matches_a_naive_computation(llama):
    low = [1, 2]
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(llama.d_model, generator=g) * 3
    clean_h = naive_rep(llama, HARMFUL, low)
    clean_b = naive_rep(llama, HARMLESS, low)
    s_comply, s_refuse = exact_score(llama, vec, 1, HARMFUL, HARMLESS, low, clean_h, clean_b)
    want_comply = cos(naive_rep(llama, HARMFUL, low, ablate_dir=vec), clean_b)
    want_refuse = cos(naive_rep(llama, HARMLESS, low, add=(vec, 1)), clean_h)
    assert s_comply == pytest.approx(want_comply, abs=1e-5)
    assert s_refuse == pytest.approx(want_refuse, abs=1e-5)
    assert abs(s_refuse - cos(clean_b, clean_h)) > 1e-4  # the addition moved the representation


def test_low_similarity_layers_are_the_least_similar():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(5, 2, 8, generator=g, dtype=torch.float64)
    harmful = {i: base[i] for i in range(5)}
    harmless = {i: base[i] + (i == 3) * 5.0 + (i == 1) * 2.0 for i in range(5)}
    low, cosines = low_similarity_layers(harmful, harmless, 0.4)
    assert low == [1, 3]
    assert cosines[0] == pytest.approx(1.0)
    assert min(cosines, key=cosines.get) == 3


def test_proxy_is_exact_when_the_direction_is_the_whole_difference():
    # ablating r = H - B from H leaves B's component only when H, B differ exactly along r and H ⟂ ... :
    # here H = B + r with B ⟂ r, so the ablated harmful mean is B (S_comply = 1) and B + r = H (S_refuse = 1)
    r = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    b = {0: torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)}
    h = {0: b[0] + r}
    assert proxy_score(r.float(), 0, [0], h, b) == pytest.approx(2.0)


def test_rank_scores_candidates_and_round_trips(llama):
    sel = rank_cosmic(
        llama,
        HARMFUL[:4],
        HARMLESS[:4],
        HARMFUL[4:],
        HARMLESS[4:],
        mode="exhaustive",
        max_kl=1e9,
        low_fraction=0.5,
    )
    assert sel.low_layers and all(0 <= x < llama.n_layers for x in sel.low_layers)
    exact = [c for c in sel.candidates if c.exact]
    assert exact and all(c.score == pytest.approx(c.s_comply + c.s_refuse) for c in exact)
    assert sel.best.eligible and sel.best.score == max(c.score for c in exact)
    assert all(not c.exact and "no difference" in c.reason for c in sel.candidates if c.layer == 0)
    back = CosmicSelection.from_dict(sel.to_dict(with_vector=True))
    assert back.best.key == sel.best.key and torch.allclose(back.direction, sel.direction)
    assert math.isclose(back.best.score, sel.best.score)


def test_fast_scores_only_the_top_k_by_proxy(llama):
    sel = rank_cosmic(
        llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:], mode="fast", top_k=1, max_kl=1e9
    )
    exact = [c for c in sel.candidates if c.exact]
    assert len(exact) == 1
    proxied = [c for c in sel.candidates if c.proxy == c.proxy]
    assert exact[0].proxy == max(c.proxy for c in proxied)


def test_errors(llama):
    with pytest.raises(SafetyscopeError, match="at least 2"):
        rank_cosmic(llama, HARMFUL[:1], HARMLESS, HARMFUL, HARMLESS)
    with pytest.raises(SafetyscopeError, match="mode"):
        rank_cosmic(llama, HARMFUL, HARMLESS, HARMFUL, HARMLESS, mode="slow")
    with pytest.raises(SafetyscopeError, match="No COSMIC candidate passes"):
        select_cosmic(llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:], max_kl=0.0)


def test_cosmic_agrees_with_causal_selection_on_the_organism(organism_dir):
    from safetyscope import load_model
    from safetyscope.pipelines.refusal import refusal_prompts, select, select_cosmic

    lm = load_model(str(organism_dir))
    prompts = refusal_prompts(lm)
    sel, direction = select_cosmic(lm, prompts)
    causal, causal_dir = select(lm, prompts)
    assert direction.site == causal_dir.site and sel.best.position == causal.best.position
    assert float(direction.vector @ causal_dir.vector) > 0.99
    assert direction.provenance["selection"] == "cosmic"


def test_low_layers_come_from_every_layer_when_candidates_are_restricted(llama):
    full = rank_cosmic(
        llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:], max_kl=1e9, low_fraction=0.3
    )
    only = rank_cosmic(
        llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:], max_kl=1e9, low_fraction=0.3, layers=[1]
    )
    assert only.low_layers == full.low_layers and len(only.layer_cosine) == llama.n_layers
    assert {c.layer for c in only.candidates} == {1}
