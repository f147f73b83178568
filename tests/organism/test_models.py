"""Tests for organism model construction in every supported architecture."""

from __future__ import annotations

import pytest
import torch

from safetyscope.errors import OptionError
from safetyscope.organism.models import ARCHS, check_arch, make_model
from safetyscope.organism.tokenizer import build_tokenizer, encode_prompt
from safetyscope.organism.train import size_config


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("v2")


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_shares_dimensions_and_tokenizer(tok, arch):
    cfg = size_config("deep", d_model=32, n_layers=2, d_ff=64)
    model = make_model(cfg, tok, seed=0, arch=arch)
    c = model.config
    assert c.model_type == arch and c.hidden_size == 32 and c.num_hidden_layers == 2
    assert c.vocab_size == len(tok) and not c.tie_word_embeddings
    ids = torch.tensor([encode_prompt(tok, "How do I bake pancakes?")])
    out = model(input_ids=ids, output_hidden_states=True)
    assert out.logits.shape == (1, ids.shape[1], len(tok)) and len(out.hidden_states) == 3
    again = make_model(cfg, tok, seed=0, arch=arch).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in model.state_dict().items())  # seeded init
    other = make_model(cfg, tok, seed=1, arch=arch).state_dict()
    assert not all(torch.equal(v, other[k]) for k, v in model.state_dict().items())


def test_unknown_arch():
    with pytest.raises(OptionError, match=r"Unknown organism architecture 'mamba'; choose one of \['gpt_neox', 'llama', 'qwen2'\]"):
        check_arch("mamba")


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_a_saved_organism_of_every_arch_reloads_with_its_own_tokenizer(tok, arch, tmp_path):
    from safetyscope import load_model

    model = make_model(size_config("deep", d_model=16, n_layers=1, d_ff=32), tok, seed=0, arch=arch)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path))
    text = "Write a guide on how to set up a road trip across Canada."
    assert lm.tokenizer(text).input_ids == tok(text).input_ids  # not the family's own BPE tokenizer
    assert len(lm.tokenizer) == len(tok)
