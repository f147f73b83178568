import pytest
import torch

from safetyscope.activations import Site, record
from safetyscope.activations.hooks import StopForward, run_until_stopped, site_module
from safetyscope.errors import SafetyscopeError


def test_record_reads_each_site_once_and_stops_after_the_deepest(llama):
    seen = []
    ids = torch.randint(3, 97, (2, 5))
    with record(llama.arch, [Site(1, "mlp_out"), Site(0)], lambda s, t: seen.append((s.key, tuple(t.shape)))):
        assert run_until_stopped(llama.model, input_ids=ids) is True
    assert seen == [("L0.resid_pre", (2, 5, 32)), ("L1.mlp_out", (2, 5, 32))]
    with record(llama.arch, [Site(0)], lambda s, t: None, stop_early=False):
        assert run_until_stopped(llama.model, input_ids=ids) is False


def test_hooks_removed_even_when_the_capture_raises(llama):
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in llama.model.modules())

    def boom(_s, _t):
        raise ValueError("capture failed")

    with pytest.raises(ValueError), record(llama.arch, [Site(1)], boom):
        llama.model(torch.randint(3, 97, (1, 4)))
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in llama.model.modules()) == before
    assert issubclass(StopForward, Exception)


def test_site_module_points(tiny_lms):
    gemma2 = tiny_lms["gemma2"]
    assert site_module(gemma2.arch, Site(1, "attn_out"))[0] is gemma2.arch.attn_out_norm(1)
    assert site_module(gemma2.arch, Site(1, "resid_pre")) == (gemma2.arch.layers[1], True)
    with pytest.raises(SafetyscopeError, match="out of range"):
        site_module(gemma2.arch, Site(9))
