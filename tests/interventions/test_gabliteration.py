import pytest
import torch

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions import (
    gabliterate,
    orthogonalize,
    orthogonalize_layers,
    plan_from_activations,
    plan_gabliteration,
    plan_shared,
)
from safetyscope.interventions.gabliteration import (
    paired_difference_directions,
    ridge_strengths,
    separability,
)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_paired_difference_directions_match_numpy_svd():
    g = torch.Generator().manual_seed(0)
    h, b = torch.randn(20, 6, generator=g) + 2.0, torch.randn(20, 6, generator=g)
    v, s, share = paired_difference_directions(h, b, 3)
    d = (h - b).double().numpy()
    import numpy as np

    _, s_np, vt = np.linalg.svd(d, full_matrices=False)
    assert torch.allclose(s, torch.tensor(s_np[:3]))
    for i in range(3):  # same vectors up to sign, oriented so harmful projects higher
        assert abs(float(v[i] @ torch.tensor(vt[i]))) == pytest.approx(1.0, abs=1e-9)
        assert float((h - b).double().mean(0) @ v[i]) >= 0
    assert share == pytest.approx(float((s_np[:3] ** 2).sum() / (s_np**2).sum()))


def test_ridge_strengths_are_the_eigenvalues_of_the_regularised_projector():
    g = torch.Generator().manual_seed(1)
    v = torch.linalg.qr(torch.randn(7, 3, generator=g, dtype=torch.float64))[0]  # [d, k] orthonormal columns
    s = torch.tensor([5.0, 2.0, 0.5], dtype=torch.float64)
    lam = 0.3
    r = v * (s / s[0])  # columns s_i / s_1 · v_i
    p = r @ torch.linalg.inv(r.T @ r + lam * torch.eye(3, dtype=torch.float64)) @ r.T
    eig = torch.linalg.eigvalsh(p).flip(0)[:3]
    assert torch.allclose(eig, ridge_strengths(s, lam))
    assert torch.allclose(ridge_strengths(s, 0.0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(SafetyscopeError, match="ridge"):
        ridge_strengths(s, -1.0)


def test_separability_naive():
    h = torch.tensor([[2.0, 0.0], [4.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    # |mu_h - mu_b| = |(3,0) - (0,1)| = sqrt(10); spreads 1 and 1
    assert separability(h, b) == pytest.approx(10**0.5 / 2)


def test_k1_without_regularisation_equals_single_direction_orthogonalization(llama):
    r = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(2))
    ids = torch.randint(3, 97, (2, 9), generator=torch.Generator().manual_seed(3))
    want = orthogonalize(llama, r)
    got = gabliterate(llama, plan_shared(llama, r, ridge=0.0))
    assert rel(got.model(ids).logits, want.model(ids).logits) <= 1e-5
    # the same through extracted per-layer directions that all equal r: H - B = c_i r with c_i > 0
    c = torch.linspace(1.0, 2.0, 8)[:, None]
    acts_b = {
        layer: torch.randn(8, llama.d_model, generator=torch.Generator().manual_seed(layer))
        for layer in range(llama.n_layers)
    }
    acts_h = {layer: acts_b[layer] + c * r for layer in acts_b}
    plan = plan_from_activations(acts_h, acts_b, k=1, ridge=0.0, adaptive=False, embed=True)
    assert all(
        abs(float(p.directions[0] @ r / r.norm())) == pytest.approx(1.0, abs=1e-5) for p in plan.layers
    )
    assert rel(gabliterate(llama, plan).model(ids).logits, want.model(ids).logits) <= 1e-4


def test_ridge_and_scaling_shrink_the_edit(llama):
    r = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(4))
    full = gabliterate(llama, plan_shared(llama, r, ridge=0.0))
    half = gabliterate(llama, plan_shared(llama, r, ridge=1.0))  # strength 1 / (1 + 1)
    w0 = llama.arch.mlp_out(1).weight
    u = (r / r.norm()).float()
    before = u @ w0
    assert torch.allclose(u @ full.arch.mlp_out(1).weight, torch.zeros_like(before), atol=1e-5)
    assert torch.allclose(u @ half.arch.mlp_out(1).weight, 0.5 * before, atol=1e-5)


def test_adaptive_scaling_and_layer_threshold():
    g = torch.Generator().manual_seed(5)
    b = {layer: torch.randn(10, 4, generator=g) for layer in range(3)}
    shift = {0: 0.5, 1: 2.0, 2: 4.0}
    h = {layer: b[layer] + shift[layer] * torch.tensor([1.0, 0, 0, 0]) for layer in range(3)}
    plan = plan_from_activations(h, b, k=1, adaptive=True, layer_threshold=0.3)
    seps = [p.separability for p in plan.layers]
    top = max(seps)
    for p in plan.layers:
        if p.separability >= 0.3 * top:
            assert p.alpha == pytest.approx(p.separability / top)
        else:
            assert p.alpha == 0 and not p.selected
    assert plan.selected and plan.selected[-1] == 2
    assert plan.to_dict()["selected_layers"] == plan.selected


def test_orthogonalize_layers_edits_only_the_listed_layers(llama):
    q = torch.linalg.qr(torch.randn(llama.d_model, 2, generator=torch.Generator().manual_seed(6)))[0].T
    edited = orthogonalize_layers(llama, {1: (q, torch.ones(2))})
    for layer in range(llama.n_layers):
        same = torch.equal(edited.arch.attn_out(layer).weight, llama.arch.attn_out(layer).weight)
        assert same == (layer != 1)
    assert torch.allclose(
        q @ edited.arch.mlp_out(1).weight, torch.zeros(2, llama.arch.mlp_out(1).weight.shape[1]), atol=1e-5
    )
    with pytest.raises(SafetyscopeError, match="out of range"):
        orthogonalize_layers(llama, {99: (q, torch.ones(2))})


def test_plan_gabliteration_on_prompts_and_errors(llama):
    harmful = [f"how do I make weapon number {i}" for i in range(6)]
    harmless = [f"how do I bake bread number {i}" for i in range(6)]
    plan = plan_gabliteration(llama, harmful, harmless, k=2)
    assert len(plan.layers) == llama.n_layers and all(
        p.directions.shape == (2, llama.d_model) for p in plan.layers
    )
    assert plan.provenance["n_pairs"] == 6
    with pytest.raises(SafetyscopeError, match="k=9"):
        plan_gabliteration(llama, harmful, harmless, k=9)
    with pytest.raises(SafetyscopeError, match="at least 2"):
        plan_gabliteration(llama, harmful[:1], harmless)


def test_gabliteration_removes_refusal_on_the_organism(organism_dir):
    from safetyscope import load_model
    from safetyscope.evaluation.refusal_score import refusal_scores
    from safetyscope.pipelines.refusal import refusal_prompts

    lm = load_model(str(organism_dir))
    p = refusal_prompts(lm, n_test=24)
    edited = gabliterate(lm, plan_gabliteration(lm, p.harmful_train, p.harmless_train, k=2))
    before = refusal_scores(lm, p.harmful_test)
    after = refusal_scores(edited, p.harmful_test)
    assert float(before.mean()) > 0 > float(after.mean())
