import pytest
import torch

from safetyscope.causal import candidate_directions, select_direction
from safetyscope.errors import SafetyscopeError

HARMFUL = [f"how do I make weapon number {i}" for i in range(6)]
HARMLESS = [f"how do I bake bread number {i}" for i in range(6)]


def test_candidates_cover_layers_and_eoi_positions(llama):
    vecs = candidate_directions(llama, HARMFUL, HARMLESS, [0, 1, 2])
    k = len(llama.chat.encode("x").eoi_positions)
    assert set(vecs) == {(layer, pos) for layer in (0, 1, 2) for pos in range(-k, 0)}
    # resid_pre at layer 0 on the shared template tokens is the same embedding for both sets
    assert all(float(vecs[(0, pos)].norm()) == 0.0 for pos in range(-k, 0))


def test_selection_scores_every_candidate_or_explains_why_not(llama):
    try:
        sel = select_direction(llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:], max_kl=1e9)
    except SafetyscopeError as exc:  # a random model may induce nothing: the error must say why
        assert "No candidate direction passes" in str(exc)
        return
    assert sel.best.eligible
    zero = [c for c in sel.candidates if c.layer == 0]
    assert zero and all(not c.eligible and "no difference" in c.reason for c in zero)
    assert sel.to_dict()["best"]["layer"] == sel.best.layer


def test_too_few_prompts(llama):
    with pytest.raises(SafetyscopeError, match="at least 2"):
        select_direction(llama, HARMFUL[:1], HARMLESS, HARMFUL, HARMLESS)


def test_fast_and_exhaustive_rank_the_same_candidates_and_round_trip(llama):
    import json

    from safetyscope.causal import Selection, rank_candidates

    args = (llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:])
    full = rank_candidates(*args, max_kl=1e9, mode="exhaustive")
    fast = rank_candidates(*args, max_kl=1e9, mode="fast", top_k=2, widen=0)
    live = [c for c in full.candidates if c.exact]
    assert full.n_exact == len(live) == 2 * len(llama.chat.encode("x").eoi_positions)  # layers 1 and 2
    assert fast.n_exact == 2 and sum(c.exact for c in fast.candidates) == 2
    assert {c.key for c in fast.candidates} == {c.key for c in full.candidates}
    # exactly scored candidates agree between the modes
    by_key = {c.key: c for c in full.candidates}
    for c in fast.candidates[:2]:
        assert c.bypass == pytest.approx(by_key[c.key].bypass, abs=1e-5)
        assert c.est_bypass == c.est_bypass and c.est_induce == c.est_induce  # estimates present (not NaN)
    assert not any(c.eligible for c in fast.candidates[2:])
    back = Selection.from_dict(json.loads(json.dumps(fast.to_dict(with_vector=True))))
    assert back.best.key == fast.best.key and back.site == fast.site and back.mode == "fast"
    assert torch.allclose(back.direction, fast.direction)
    with pytest.raises(SafetyscopeError, match="Unknown selection mode"):
        rank_candidates(*args, mode="quick")


def test_first_order_estimates_track_exact_effects_for_small_vectors(llama):
    from safetyscope.causal.estimate import ablation_effects, addition_effects
    from safetyscope.evaluation.refusal_score import refusal_scores
    from safetyscope.interventions import add

    tokens = [5, 6, 7]
    prompts = HARMFUL[:3]
    base = float(refusal_scores(llama, prompts, tokens).mean())
    v = torch.randn(32, generator=torch.Generator().manual_seed(0)) * 1e-3  # small next to the stream
    est_add = float(addition_effects(llama, prompts, {1: v[None]}, tokens)[1][0])
    with add(llama, v, sites=1):
        exact_add = float(refusal_scores(llama, prompts, tokens).mean()) - base
    assert est_add == pytest.approx(exact_add, rel=0.05, abs=1e-6)
    # ablation: the estimate is the derivative of a partial ablation x - eps (x.r) r at every write
    from safetyscope.activations import edit
    from safetyscope.interventions import writer_sites

    r = torch.randn(32, generator=torch.Generator().manual_seed(1))
    r = r / r.norm()
    est_abl = float(ablation_effects(llama, prompts, r[None], tokens)[0])
    def partial_ablation(eps):
        with edit(llama.arch, writer_sites(llama), lambda _s, x: x - eps * (x @ r).unsqueeze(-1) * r):
            return float(refusal_scores(llama, prompts, tokens).double().mean())

    derivative = (partial_ablation(0.1) - partial_ablation(-0.1)) / 0.2  # central difference
    assert est_abl == pytest.approx(derivative, rel=0.1)
    assert est_abl * float(ablation_effects(llama, prompts, -r[None], tokens)[0]) > 0  # sign-free in r


def test_fast_selection_widens_when_the_estimate_misranks(organism_dir, monkeypatch):
    from safetyscope import load_model
    from safetyscope.causal import rank_candidates
    from safetyscope.causal import selection as selection_module
    from safetyscope.organism.dataset import build_corpus

    lm = load_model(str(organism_dir))
    corpus = build_corpus()
    harmful = corpus.prompts("harmful")[:12]
    harmless = corpus.prompts("harmless")[:12]
    args = (lm, harmful[:6], harmless[:6], harmful[6:], harmless[6:])
    full = rank_candidates(*args, mode="exhaustive")
    assert full.best.eligible
    bad = next(c.key for c in full.candidates if c.exact and not c.eligible)
    live = [c.key for c in full.candidates if c.exact]
    order = list(candidate_directions(lm, harmful[:6], harmless[:6], sorted({k[0] for k in live})))
    live = [k for k in order if k in live]

    # adversarial first-order estimates: an ineligible candidate ranks first, every candidate "induces"
    def fake_ablation(_lm, _prompts, stack, _tokens):
        return torch.tensor([-100.0 if k == bad else 0.0 for k in live], dtype=torch.float64)

    def fake_addition(_lm, _prompts, per_layer, _tokens):
        return {layer: torch.full((len(v),), 100.0) for layer, v in per_layer.items()}

    monkeypatch.setattr(selection_module, "ablation_effects", fake_ablation)
    monkeypatch.setattr(selection_module, "addition_effects", fake_addition)
    fast = rank_candidates(*args, mode="fast", top_k=1)
    assert fast.best.eligible and fast.n_exact >= 2
    assert next(c for c in fast.candidates if c.key == bad).exact


def test_fast_selection_does_not_widen_on_a_model_that_does_not_refuse(llama):
    from safetyscope.causal import rank_candidates

    prompts = [f"prompt number {i} about things" for i in range(8)]
    sel = rank_candidates(llama, prompts[:2], prompts[2:4], prompts[4:6], prompts[6:], mode="fast", top_k=2, widen=3)
    assert not any(c.eligible for c in sel.candidates)  # a random model refuses nothing
    assert sel.n_exact == 2  # one round of top_k, no widening
