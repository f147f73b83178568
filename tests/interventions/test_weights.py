import json

import pytest
import torch

from safetyscope import load_model
from safetyscope.errors import OutputExistsError, SafetyscopeError
from safetyscope.interventions.export import EDIT_CARD, save_edited
from safetyscope.interventions.hooks import ablate
from safetyscope.interventions.weights import gaussian_kernel, orthogonalize, project_against
from safetyscope.model.tiny import TINY_FAMILIES, save_tiny


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("k", [1, 3])
def test_orthogonalized_logits_equal_hook_ablation(tiny_lms, family, k):
    lm = tiny_lms[family]
    g = torch.Generator().manual_seed(k)
    r = torch.randn(k, lm.d_model, generator=g).squeeze(0)
    ids = torch.randint(3, 97, (2, 11), generator=g)
    base = lm.model(ids).logits
    with ablate(lm, r):
        hooked = lm.model(ids).logits
    edited = orthogonalize(lm, r)
    assert rel(edited.model(ids).logits, hooked) <= 1e-4
    assert rel(hooked, base) > 1e-3  # the ablation does something
    assert torch.equal(lm.model(ids).logits, base)  # input model untouched, hooks removed
    assert edited.fingerprint() != lm.fingerprint()


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_edited_stream_carries_no_direction(tiny_lms, family):
    lm = tiny_lms[family]
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(3))
    r = r / r.norm()
    edited = orthogonalize(lm, r)
    hs = edited.model(torch.randint(3, 97, (1, 7)), output_hidden_states=True).hidden_states
    for h in hs[:-1]:  # the last entry has the final norm applied
        assert (h[0] @ r).abs().max() < 1e-4 * h.norm(dim=-1).max()


def test_variants_and_kernel(llama):
    g = torch.Generator().manual_seed(0)
    r, mu = torch.randn(32, generator=g), torch.randn(32, generator=g)
    with pytest.raises(SafetyscopeError, match="harmless_mean"):
        orthogonalize(llama, r, "projected")
    with pytest.raises(SafetyscopeError, match="Unknown orthogonalization"):
        orthogonalize(llama, r, "magic")
    with pytest.raises(SafetyscopeError, match="dimension 5"):
        orthogonalize(llama, torch.randn(5))
    proj = project_against(r, mu)
    assert abs(float(proj @ mu)) < 1e-5 and abs(float(proj.norm()) - 1) < 1e-6
    bip = orthogonalize(llama, r, "biprojected", harmless_mean=mu)
    w0 = llama.arch.mlp_out(1).weight
    w1 = bip.arch.mlp_out(1).weight
    assert torch.allclose(w0.norm(dim=0), w1.norm(dim=0), atol=1e-5)  # write vectors keep their norms
    assert (proj @ w1).abs().max() < 1e-5
    kernel = gaussian_kernel(3, peak=1, width=0.5)
    assert kernel[1] == 1.0 and kernel[0] < 0.2
    partial = orthogonalize(llama, r, layer_weights={1: 1.0}, embed_weight=0.0)
    assert torch.equal(partial.arch.mlp_out(0).weight, llama.arch.mlp_out(0).weight)
    assert torch.equal(partial.arch.embed.weight, llama.arch.embed.weight)
    assert not torch.equal(partial.arch.mlp_out(1).weight, w0)


def test_tied_embeddings_are_untied_before_editing(tmp_path):
    lm = load_model(save_tiny("llama", tmp_path / "tied", tie_word_embeddings=True))
    assert lm.arch.unembed.weight.data_ptr() == lm.arch.embed.weight.data_ptr()
    r = torch.randn(32)
    ids = torch.randint(3, 97, (1, 6))
    with ablate(lm, r):
        hooked = lm.model(ids).logits
    edited = orthogonalize(lm, r)
    assert edited.arch.unembed.weight.data_ptr() != edited.arch.embed.weight.data_ptr()
    assert rel(edited.model(ids).logits, hooked) <= 1e-4
    out = save_edited(edited, tmp_path / "edited", {"method": "standard"})
    reloaded = load_model(out)
    assert rel(reloaded.model(ids).logits, hooked) <= 1e-4


def test_export_is_atomic_and_refuses_existing(llama, tmp_path):
    edited = orthogonalize(llama, torch.randn(32))
    out = save_edited(edited, tmp_path / "m", {"method": "standard", "source": llama.spec})
    card = json.loads((out / EDIT_CARD).read_text())
    assert card["method"] == "standard" and card["fingerprint"] == edited.fingerprint()
    assert load_model(out).fingerprint() == edited.fingerprint()
    with pytest.raises(OutputExistsError):
        save_edited(edited, out, {})
    save_edited(edited, out, {"method": "again"}, force=True)
    assert json.loads((out / EDIT_CARD).read_text())["method"] == "again"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]
