"""The attn_z point: the input of the attention-output projection, sliced per head."""

import pytest
import torch

from safetyscope.activations import Site, edit, record
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import TINY_FAMILIES


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_attn_z_is_the_input_of_the_output_projection(tiny_lms, family):
    lm = tiny_lms[family]
    ids = torch.randint(3, 60, (2, 5))
    seen, direct = {}, {}
    handle = lm.arch.attn_out(1).register_forward_pre_hook(lambda _m, args: direct.setdefault("z", args[0].clone()))
    try:
        with torch.no_grad(), record(lm.arch, [Site(1, "attn_z")], lambda s, t: seen.setdefault(s, t.clone()),
                                     stop_early=False):
            lm.model(input_ids=ids)
    finally:
        handle.remove()
    assert torch.equal(seen[Site(1, "attn_z")], direct["z"])


def test_zeroing_attn_z_equals_zeroing_attn_out_without_bias(llama):
    ids = torch.randint(3, 60, (1, 6))
    with torch.no_grad():
        with edit(llama.arch, Site(1, "attn_z"), lambda _s, h: torch.zeros_like(h)):
            a = llama.model(input_ids=ids).logits
        with edit(llama.arch, Site(1, "attn_out"), lambda _s, h: torch.zeros_like(h)):
            b = llama.model(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-6)  # llama's o_proj has no bias


def test_unknown_point_lists_attn_z():
    with pytest.raises(SafetyscopeError, match="attn_z"):
        Site(0, "attn_q")  # type: ignore[arg-type]
