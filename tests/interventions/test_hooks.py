import pytest
import torch

from safetyscope.activations import Site, record
from safetyscope.directions import Direction
from safetyscope.interventions import InterventionError, ablate, add, affine_edit, compose, orthonormal
from safetyscope.model.tiny import TINY_FAMILIES


def hidden(lm, ids):
    got = {}
    with record(lm.arch, [Site(i) for i in range(lm.n_layers)], lambda s, t: got.__setitem__(s.layer, t.clone()),
                stop_early=False):
        lm.model(ids)
    return [got[i] for i in range(lm.n_layers)]


def n_hooks(lm):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())


def test_add_shifts_resid_pre_exactly(llama):
    ids = torch.randint(3, 97, (2, 5))
    v = torch.randn(32)
    base = hidden(llama, ids)
    with add(llama, v, scale=2.0, sites=[1]):
        steered = hidden(llama, ids)
    assert torch.allclose(steered[0], base[0])
    assert torch.allclose(steered[1], base[1] + 2.0 * v, atol=1e-5)
    with add(llama, v, scale=1.0, layers=1, positions="last"):
        last = hidden(llama, ids)
    assert torch.allclose(last[1][:, :-1], base[1][:, :-1]) and torch.allclose(last[1][:, -1], base[1][:, -1] + v, atol=1e-5)


def test_add_per_layer_vectors_and_errors(llama):
    ids = torch.randint(3, 97, (1, 4))
    vs = torch.randn(3, 32)
    base = hidden(llama, ids)
    with add(llama, {0: vs[0], 2: vs[2]}, sites=[0, 2]):
        h = hidden(llama, ids)
    assert torch.allclose(h[0], base[0] + vs[0], atol=1e-5)
    with pytest.raises(InterventionError, match="d_model is 32"), add(llama, torch.randn(7), sites=1):
        pass
    with pytest.raises(InterventionError, match="out of range"), add(llama, torch.randn(32), sites=[5]):
        pass
    with pytest.raises(InterventionError, match="no vector for site"):
        with add(llama, {0: vs[0]}, sites=[0, 1]):
            pass


def test_a_bare_vector_without_a_site_is_refused_never_guessed(llama):
    with pytest.raises(InterventionError, match="no site to write at"), add(llama, torch.randn(32)):
        pass
    d = Direction("diff_means", None, torch.randn(32, dtype=torch.float64), 1.0, 1.0)
    with pytest.raises(InterventionError, match="no site to write at"), add(llama, d):
        pass
    with pytest.raises(InterventionError, match="no site"), affine_edit(llama, torch.randn(32), torch.randn(32)):
        pass


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_steering_with_a_direction_read_at_one_site_writes_at_that_same_site(tiny_lms, family):
    """Regression: a direction read at resid_post L used to be added at the input of block L."""
    lm = tiny_lms[family]
    ids = torch.randint(3, 60, (2, 5))
    v = torch.randn(lm.d_model, dtype=torch.float64)
    d = Direction("diff_means", 1, v / v.norm(), float(v.norm()), 2.0, point="resid_post")
    sites = [Site(layer, p) for layer in range(lm.n_layers) for p in ("resid_pre", "resid_post")]

    def read():
        got = {}
        with torch.no_grad(), record(lm.arch, sites, lambda s, t: got.__setitem__(s, t.clone()), stop_early=False):
            lm.model(input_ids=ids)
        return got

    base = read()
    with add(lm, d):
        steered = read()
    delta = (2.0 * d.vector).float()
    # untouched up to and including the input of block 1 ...
    for site in (Site(0, "resid_pre"), Site(0, "resid_post"), Site(1, "resid_pre")):
        assert torch.equal(steered[site], base[site]), site
    # ... written exactly at the site it was read: block 1's output (= block 2's input)
    assert torch.allclose(steered[Site(1, "resid_post")], base[Site(1, "resid_post")] + delta, atol=1e-5)
    assert torch.allclose(steered[Site(2, "resid_pre")], steered[Site(1, "resid_post")])


def test_hooks_restore_on_exception(llama):
    before = n_hooks(llama)
    with pytest.raises(RuntimeError, match="boom"):
        with compose(add(llama, torch.randn(32), sites=1), ablate(llama, torch.randn(32))):
            assert n_hooks(llama) > before
            raise RuntimeError("boom")
    assert n_hooks(llama) == before


@pytest.mark.parametrize("family", ["gemma2", "llama"])
def test_ablation_removes_direction_from_the_stream_at_every_layer(tiny_lms, family):
    lm = tiny_lms[family]  # gemma2: a post-norm family, the hard case
    basis = orthonormal(torch.randn(2, 32))
    with torch.no_grad(), ablate(lm, basis):
        hs = hidden(lm, torch.randint(3, 97, (2, 6)))
    for h in hs:
        assert (h @ basis.T).abs().max() < 1e-4 * h.abs().max()


def test_ablation_applies_to_generated_tokens(llama):
    r = torch.randn(32)
    r = r / r.norm()
    ids = torch.randint(3, 97, (1, 4))
    seen = []
    handle = llama.arch.layers[2].register_forward_pre_hook(lambda _m, args: seen.append(args[0][:, -1] @ r))
    try:
        with torch.no_grad(), ablate(llama, r):
            llama.model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    finally:
        handle.remove()
    assert len(seen) == 4  # prompt pass + 3 cached single-token passes
    assert all(s.abs().max() < 1e-4 for s in seen)


def test_affine_edit_sets_the_coordinate(llama):
    r = torch.randn(32)
    mu = torch.randn(32)
    ids = torch.randint(3, 97, (3, 5))
    rhat = r / r.norm()
    with torch.no_grad(), affine_edit(llama, r, mu, alpha=1.5, sites=[1]):
        h = hidden(llama, ids)[1]
    assert torch.allclose(h @ rhat, torch.full((3, 5), float(mu @ rhat) + 1.5), atol=1e-4)
    base = hidden(llama, ids)[1]
    assert torch.allclose(h - (h @ rhat).unsqueeze(-1) * rhat, base - (base @ rhat).unsqueeze(-1) * rhat, atol=1e-5)
    # a Direction is edited at its own site
    d = Direction("diff_means", 2, rhat.double(), 1.0, 1.0, point="resid_pre")
    with torch.no_grad(), affine_edit(llama, d, mu, alpha=0.0):
        hs = hidden(llama, ids)
    assert torch.allclose(hs[2] @ rhat, torch.full((3, 5), float(mu @ rhat)), atol=1e-4)
    assert torch.allclose(hs[1], base)
