import pytest
import torch

from safetyscope.activations import Site
from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.patching import patch


def test_patching_source_activations_reproduces_the_source_run(llama):
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(3, 97, (2, 6), generator=g)
    corrupt = clean.clone()
    corrupt[:, 2] = (corrupt[:, 2] + 5) % 97  # differ at position 2 only
    src = llama.model(corrupt, output_hidden_states=True).hidden_states
    positions = torch.tensor([[2], [2]])
    corrupt_logits = llama.model(corrupt).logits
    # every position of block 0's output patched: everything downstream is the corrupt run
    every = torch.arange(6).repeat(2, 1)
    with patch(llama, Site(0, "resid_post"), every, src[1]):
        assert torch.allclose(llama.model(clean).logits, corrupt_logits, atol=1e-5)
    # at resid_pre of layer 0 (the embedding) it is exact
    with patch(llama, Site(0, "resid_pre"), positions, src[0][:, 2:3]):
        exact = llama.model(clean).logits
    assert torch.allclose(exact, corrupt_logits, atol=1e-5)


def test_negative_positions_are_skipped_and_shapes_checked(llama):
    ids = torch.randint(3, 97, (2, 4))
    base = llama.model(ids).logits
    with patch(llama, Site(1), torch.tensor([[-1], [-1]]), torch.zeros(2, 1, 32)):
        assert torch.allclose(llama.model(ids).logits, base)
    with pytest.raises(SafetyscopeError, match="must be"):
        with patch(llama, Site(1), torch.tensor([[1]]), torch.zeros(1, 2, 32)):
            pass
