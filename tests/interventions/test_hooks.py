import pytest
import torch
from tests.interventions.conftest import resid_pre as hidden

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.hooks import ablate, add, affine_edit, compose, orthonormal


def n_hooks(lm):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())




def test_add_shifts_resid_pre_exactly(llama):
    ids = torch.randint(3, 97, (2, 5))
    v = torch.randn(32)
    base = hidden(llama, ids)
    with add(llama, v, scale=2.0, layers=[1]):
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
    with add(llama, {0: vs[0], 2: vs[2]}, layers=[0, 2]):
        h = hidden(llama, ids)
    assert torch.allclose(h[0], base[0] + vs[0], atol=1e-5)
    with pytest.raises(SafetyscopeError, match="d_model is 32"), add(llama, torch.randn(7)):
        pass
    with pytest.raises(SafetyscopeError, match="out of range"), add(llama, torch.randn(32), layers=[5]):
        pass
    with pytest.raises(SafetyscopeError, match="no vector for layers"):
        with add(llama, {0: vs[0]}, layers=[0, 1]):
            pass


def test_hooks_restore_on_exception(llama):
    before = n_hooks(llama)
    with pytest.raises(RuntimeError, match="boom"):
        with compose(add(llama, torch.randn(32)), ablate(llama, torch.randn(32))):
            assert n_hooks(llama) > before
            raise RuntimeError("boom")
    assert n_hooks(llama) == before


def test_ablation_removes_direction_from_the_stream_at_every_layer(tiny_lms):
    lm = tiny_lms["gemma2"]  # post-norm family: the hard case
    basis = orthonormal(torch.randn(2, 32))
    with ablate(lm, basis):
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
        with ablate(llama, r):
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
    with affine_edit(llama, r, mu, alpha=1.5, layers=[1]):
        h = hidden(llama, ids)[1]
    assert torch.allclose(h @ rhat, torch.full((3, 5), float(mu @ rhat) + 1.5), atol=1e-4)
    base = hidden(llama, ids)[1]
    assert torch.allclose(h - (h @ rhat).unsqueeze(-1) * rhat, base - (base @ rhat).unsqueeze(-1) * rhat, atol=1e-5)
