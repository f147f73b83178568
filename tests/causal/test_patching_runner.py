"""The expanded-batch runner: row-wise writes, block skipping, greedy patched generation."""

import pytest
import torch

from safetyscope.activations import Site
from safetyscope.causal.patching_runner import SiteWrites, generate_rows, run_rows
from safetyscope.evaluation.generate import generate_ids

PROMPTS = ["abc defg", "jk"]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_generate_rows_matches_greedy_generation(tiny_lms, family):
    lm = tiny_lms[family]
    ids = [lm.chat.encode(p).input_ids for p in PROMPTS]
    ours = generate_rows(lm, ids, max_new_tokens=5)
    ref = generate_ids(lm, PROMPTS, max_new_tokens=5, progress=False)
    eos = lm.tokenizer.eos_token_id
    for a, b in zip(ours, ref, strict=True):
        cut = a.index(eos) if eos in a else len(a)
        assert a[:cut] == [t for t in b if t != eos][:cut]


def test_rows_get_their_own_writes_and_others_stay_untouched(llama):
    ids = [llama.chat.encode(p).input_ids for p in PROMPTS]
    base, _ = run_rows(llama, ids)
    w = SiteWrites(Site(1), torch.tensor([0]), torch.tensor([len(ids[0]) - 1]), torch.zeros(1, llama.d_model))
    patched, _ = run_rows(llama, ids, [w])
    assert torch.allclose(patched[1], base[1], atol=1e-6)  # row 1 not written
    assert not torch.allclose(patched[0], base[0], atol=1e-4)
    gen = generate_rows(llama, ids, [w], max_new_tokens=3)
    solo = generate_rows(llama, ids[:1], [w], max_new_tokens=3)
    assert gen[0] == solo[0]


def test_skipping_blocks_with_their_output_written_back_is_exact(llama):
    ids = [llama.chat.encode(p).input_ids for p in PROMPTS]
    base, rec = run_rows(llama, ids, record_sites=[Site(2)])
    lens = [len(s) for s in ids]
    w = SiteWrites(Site(2), torch.cat([torch.full((k,), r) for r, k in enumerate(lens)]),
                   torch.cat([torch.arange(k) for k in lens]), torch.cat([rec[Site(2)][r, :k] for r, k in enumerate(lens)]))
    skipped, _ = run_rows(llama, ids, [w], skip_below=2)
    assert torch.allclose(skipped, base, atol=1e-5)
    assert all(type(b).__name__ != "_Skip" for b in llama.arch.layers)  # restored
