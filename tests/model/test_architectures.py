import json

import pytest
import torch
from torch import nn

from safetyscope.errors import UnknownArchitectureError
from safetyscope.model.architectures import (
    ARCHITECTURES,
    ArchitectureMap,
    candidate_paths,
    resolve_architecture,
)
from safetyscope.model.tiny import TINY_FAMILIES, tiny_model

REQUIRED = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "gpt2", "gpt_neox", "olmo2"}


def test_required_families_are_covered():
    assert set(ARCHITECTURES) >= REQUIRED


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_resolved_writers_reconstruct_the_residual_stream(family):
    """Sum of embedding + every attn/MLP residual write equals the last hidden state before the final norm.

    This checks that the map names exactly the modules that write into the residual stream
    (through their post-norms where the family has them), not just modules that exist.
    """
    model = tiny_model(family)
    arch = resolve_architecture(model)
    assert arch.n_layers == 3
    writes: list[torch.Tensor] = []

    def grab(_m, _i, out):
        writes.append(out[0] if isinstance(out, tuple) else out)

    handles = []
    for i in range(arch.n_layers):
        for get, norm in ((arch.attn_out, arch.attn_out_norm), (arch.mlp_out, arch.mlp_out_norm)):
            handles.append((norm(i) or get(i)).register_forward_hook(grab))
    ids = torch.randint(3, 97, (2, 6))
    try:
        out = model(ids, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    emb = arch.embed(ids)
    if arch.pos_embed is not None:
        emb = emb + arch.pos_embed(torch.arange(ids.shape[1]))
    assert len(writes) == 2 * arch.n_layers
    assert torch.allclose(out.hidden_states[0], emb, atol=1e-5)
    # HF's hidden_states[i] is the input of block i; the last entry has the final norm applied.
    for i in range(1, arch.n_layers):
        partial = emb + sum(writes[: 2 * i])
        assert torch.allclose(partial, out.hidden_states[i], atol=1e-4), f"block {i}"
    total = emb + sum(writes)
    assert torch.allclose(arch.final_norm(total), out.hidden_states[-1], atol=1e-4)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_unembed_and_final_norm_give_the_logits(family):
    model = tiny_model(family)
    arch = resolve_architecture(model)
    ids = torch.randint(3, 97, (1, 5))
    out = model(ids, output_hidden_states=True)
    logits = arch.unembed(out.hidden_states[-1])
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    assert torch.allclose(logits, out.logits, atol=1e-5)


def test_unknown_architecture_lists_candidates_and_how_to_fix():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.out_proj = nn.Linear(8, 8)

    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(10, 8)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.head = nn.Linear(8, 10)

    with pytest.raises(UnknownArchitectureError) as err:
        resolve_architecture(Weird())
    msg = str(err.value)
    assert "blocks (2 x Block)" in msg and "tok" in msg and "head" in msg
    assert "--arch-map" in msg and "Supported families" in msg


def test_custom_map_from_file_resolves_and_bad_paths_fail(tmp_path):
    model = tiny_model("llama")
    data = ARCHITECTURES["llama"].to_dict() | {"family": "my-llama"}
    path = tmp_path / "map.json"
    path.write_text(json.dumps(data))
    arch = resolve_architecture(model, ArchitectureMap.from_file(path))
    assert arch.map.family == "my-llama"
    with pytest.raises(UnknownArchitectureError, match="no such module"):
        resolve_architecture(model, ArchitectureMap.from_dict(data | {"mlp_out": "mlp.nope"}))
    with pytest.raises(UnknownArchitectureError, match="Unknown architecture-map keys"):
        ArchitectureMap.from_dict(data | {"colour": "red"})
    with pytest.raises(UnknownArchitectureError, match="Incomplete"):
        ArchitectureMap.from_dict({"family": "x"})


def test_writer_width_is_checked():
    model = tiny_model("llama")
    wrong = ArchitectureMap.from_dict(ARCHITECTURES["llama"].to_dict() | {"mlp_out": "mlp.up_proj"})
    with pytest.raises(UnknownArchitectureError, match="writes 64 features but d_model is 32"):
        resolve_architecture(model, wrong)


def test_candidate_paths_finds_llama_parts():
    cands = candidate_paths(tiny_model("llama"))
    assert any(c.startswith("model.layers (3") for c in cands["layers"])
    assert "model.embed_tokens" in cands["embed"]
    assert "lm_head" in cands["unembed"]
