"""Gradient-keeping reads give autograd's gradients and always remove their hooks."""

import pytest
import torch

from safetyscope.activations.sites import Site
from safetyscope.circuits.grad_hooks import read_with_grad
from safetyscope.circuits.graph import build_graph
from safetyscope.circuits.graph_io import graph_io
from safetyscope.circuits.taps import gradient_taps, receiver_patches


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_read_with_grad_matches_a_finite_difference(llama):
    ids = torch.tensor([[5, 6, 7, 8]])
    site = Site(1, "mlp_out")
    with read_with_grad(llama.arch, [site]) as seen:
        out = llama.model(input_ids=ids).logits[0, -1, 10]
        (grad,) = torch.autograd.grad(out, [seen[site]])
    act = seen[site].detach()
    assert grad.shape == act.shape and grad.abs().sum() > 0
    # a small step along the gradient at that site changes the logit by eps * |grad|^2
    from safetyscope.activations.hooks import edit

    eps = 1e-3
    with torch.no_grad(), edit(llama.arch, site, lambda _s, h: h + eps * grad):
        moved = llama.model(input_ids=ids).logits[0, -1, 10]
    assert float(moved - out.detach()) == pytest.approx(eps * float(grad.pow(2).sum()), rel=2e-2)


@pytest.mark.parametrize("which", ["read_with_grad", "gradient_taps", "receiver_patches"])
def test_hooks_are_removed_on_exceptions(llama, which):
    before = _hook_count(llama.model)
    graph = build_graph(llama)
    io = graph_io(llama, graph)
    ctx = {
        "read_with_grad": lambda: read_with_grad(llama.arch, [Site(0, "attn_out"), Site(1, "attn_z")]),
        "gradient_taps": lambda: gradient_taps(llama, graph, io),
        "receiver_patches": lambda: receiver_patches(llama, graph, io, lambda _r, _x: None),
    }[which]
    with pytest.raises(RuntimeError, match="boom"), ctx():
        assert _hook_count(llama.model) > before
        llama.model(input_ids=torch.tensor([[5, 6, 7]]))
        raise RuntimeError("boom")
    assert _hook_count(llama.model) == before
    with ctx():
        llama.model(input_ids=torch.tensor([[5, 6, 7]]))
    assert _hook_count(llama.model) == before
