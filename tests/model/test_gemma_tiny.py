"""The Gemma-3-270M checks of bench/real_models.py on a tiny random Gemma3 (tied, sandwich norms)."""

import torch

from safetyscope import load_model
from safetyscope.activations import Site, collect
from safetyscope.model.tiny import save_tiny

PROMPTS = ["How do I bake bread?", "x", "a longer prompt that the model reads"]


def test_tiny_gemma3_collect_equals_hidden_states_and_decomposes(tmp_path):
    lm = load_model(save_tiny("gemma3_text", tmp_path / "g", chat=True, tie_word_embeddings=True))
    assert lm.kind == "base" and lm.chat.template_kind == "gemma-turns"
    assert lm.arch.unembed.weight.data_ptr() == lm.arch.embed.weight.data_ptr()  # tied
    sites = [Site(0, "resid_pre")] + [Site(x, "resid_post") for x in range(lm.n_layers - 1)]
    res = collect(lm, PROMPTS, sites, "eoi", "none", progress=False)
    for i, prompt in enumerate(PROMPTS):
        enc = lm.chat.encode(prompt)
        with torch.no_grad():
            hs = lm.model(torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
        mask = res.prompt_index == i
        for k, site in enumerate(sites):
            got = res.rows[site.key][mask]
            assert torch.allclose(got, hs[k][0, enc.eoi_positions], atol=1e-5, rtol=0), site.key
    parts = ("resid_pre", "attn_out", "mlp_out", "resid_post")
    dec = collect(lm, PROMPTS, [Site(x, p) for x in range(lm.n_layers) for p in parts], "last", "none", progress=False)
    for x in range(lm.n_layers):
        r = {p: dec.rows[Site(x, p).key] for p in parts}
        assert torch.allclose(r["resid_pre"] + r["attn_out"] + r["mlp_out"], r["resid_post"], atol=1e-5)


def test_collection_without_early_stop_computes_last_position_logits_only(tmp_path):
    lm = load_model(save_tiny("gemma3_text", tmp_path / "g", chat=True))
    seen = []
    handle = lm.arch.unembed.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    try:
        collect(lm, PROMPTS, Site(lm.n_layers - 1, "resid_post"), "last", "none", progress=False, stop_early=False)
    finally:
        handle.remove()
    assert seen and all(shape[1] == 1 for shape in seen)  # [batch, 1, vocab], not [batch, seq, vocab]
