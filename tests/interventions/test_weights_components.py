import pytest
import torch

from safetyscope.errors import SafetyscopeError
from safetyscope.interventions import orthogonalize, parse_components
from safetyscope.interventions.weights import n_attention_heads


def test_parse_components(llama):
    got = parse_components("a1, m2,a0.h1,a0.h3", llama)
    assert got == {("attn", 1): None, ("mlp", 2): None, ("attn", 0): [1, 3]}
    assert parse_components(["a0", "a0.h1"], llama) == {("attn", 0): None}  # the whole attention wins
    for bad, msg in (("x1", "use aL"), ("a9", "out of range"), ("a0.h99", "head 99"), ("m1.h0", "no heads"), ("", "No components")):
        with pytest.raises(SafetyscopeError, match=msg):
            parse_components(bad, llama)


def test_component_targeted_edit_touches_only_the_named_writers(llama):
    r = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(0))
    u = r / r.norm()
    edited = orthogonalize(llama, r, components="a1,m2")
    assert torch.equal(edited.arch.embed.weight, llama.arch.embed.weight)
    for layer in range(llama.n_layers):
        for which in ("attn", "mlp"):
            new = (edited.arch.attn_out if which == "attn" else edited.arch.mlp_out)(layer).weight
            old = (llama.arch.attn_out if which == "attn" else llama.arch.mlp_out)(layer).weight
            if (which, layer) in (("attn", 1), ("mlp", 2)):
                assert torch.allclose(u @ new, torch.zeros(new.shape[1]), atol=1e-5)
            else:
                assert torch.equal(new, old)
    assert "a1" in edited.spec and "m2" in edited.spec


def test_head_targeted_edit_projects_only_that_heads_columns(llama):
    r = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(1))
    u = r / r.norm()
    edited = orthogonalize(llama, r, components="a1.h2")
    new, old = edited.arch.attn_out(1).weight, llama.arch.attn_out(1).weight  # [d_model, n_heads * d_head]
    d_head = old.shape[1] // n_attention_heads(llama)
    cols = slice(2 * d_head, 3 * d_head)
    assert torch.allclose(u @ new[:, cols], torch.zeros(d_head), atol=1e-5)
    rest = torch.ones(old.shape[1], dtype=torch.bool)
    rest[cols] = False
    assert torch.equal(new[:, rest], old[:, rest])


def test_every_component_equals_whole_model_without_the_embedding(llama):
    r = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(2))
    names = ",".join(f"a{i},m{i}" for i in range(llama.n_layers))
    a = orthogonalize(llama, r, components=names)
    b = orthogonalize(llama, r, embed_weight=0.0)
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(x, y)
