import pytest
import torch

from safetyscope.activations import Site, edit, record
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import TINY_FAMILIES


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_writing_resid_post_equals_writing_next_resid_pre(tiny_lms, family):
    lm = tiny_lms[family]
    ids = torch.randint(3, 60, (2, 5))
    shift = torch.randn(lm.d_model) * 0.5

    def add(_site, h):
        return h + shift.to(h.dtype)

    with torch.no_grad():
        with edit(lm.arch, Site(0, "resid_post"), add):
            a = lm.model(input_ids=ids).logits
        with edit(lm.arch, Site(1, "resid_pre"), add):
            b = lm.model(input_ids=ids).logits
        base = lm.model(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, base, atol=1e-3)


def test_edit_writes_what_record_then_reads(llama):
    ids = torch.randint(3, 97, (1, 4))
    seen = {}
    with edit(llama.arch, Site(1, "mlp_out"), lambda _s, h: torch.zeros_like(h)), \
            record(llama.arch, [Site(1, "mlp_out")], lambda s, t: seen.setdefault(s, t.clone()), stop_early=False):
        llama.model(input_ids=ids)
    # record's hook runs after edit's, so it sees the edited value
    assert seen[Site(1, "mlp_out")].abs().max() == 0


def test_edit_hooks_removed_on_exception_and_empty_sites_rejected(llama):
    before = _hook_count(llama.model)

    def boom(_s, _h):
        raise ValueError("edit failed")

    with pytest.raises(ValueError), edit(llama.arch, [Site(0), Site(1, "attn_out")], boom):
        llama.model(torch.randint(3, 97, (1, 4)))
    assert _hook_count(llama.model) == before
    with pytest.raises(SafetyscopeError, match="no sites"), edit(llama.arch, [], lambda s, h: h):
        pass
