import importlib

import pytest
import torch

from safetyscope.activations import Site, collect

collect_mod = importlib.import_module("safetyscope.activations.collect")

PROMPTS = [f"prompt number {i} " + "word " * (i % 7) for i in range(12)]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("reduce", ["none", "cov"])
def test_interrupted_run_resumes_and_matches(llama, tmp_path, monkeypatch, reduce):
    sites = [Site(1), Site(2, "resid_post")]
    reference = collect(llama, PROMPTS, sites, "last", reduce, batch_size=2, progress=False)
    real = collect_mod._run_batch
    seen: list[int] = []

    def dies_after_three(lm, batch, *args):
        if len(seen) == 3:
            raise Interrupt
        seen.append(len(batch))
        return real(lm, batch, *args)

    monkeypatch.setattr(collect_mod, "_run_batch", dies_after_three)
    with pytest.raises(Interrupt):
        collect(llama, PROMPTS, sites, "last", reduce, batch_size=2, cache=tmp_path, checkpoint_seconds=0, progress=False)
    assert len(list(tmp_path.glob("*/partial.safetensors"))) == 1

    resumed: list[int] = []

    def counting(lm, batch, *args):
        resumed.append(len(batch))
        return real(lm, batch, *args)

    monkeypatch.setattr(collect_mod, "_run_batch", counting)
    res = collect(llama, PROMPTS, sites, "last", reduce, batch_size=2, cache=tmp_path, checkpoint_seconds=0, progress=False)
    assert sum(resumed) == len(PROMPTS) - 6  # 3 batches of 2 were already done
    for s in sites:
        assert torch.allclose(res.mean(s), reference.mean(s), atol=1e-6)
        if reduce == "none":
            assert torch.equal(res.prompt_index, reference.prompt_index)
            assert torch.allclose(res.rows[s.key], reference.rows[s.key], atol=1e-6)
        else:
            assert torch.allclose(res.cov(s), reference.cov(s), atol=1e-6)
    assert not list(tmp_path.glob("*/partial.safetensors"))

    resumed.clear()
    again = collect(llama, PROMPTS, sites, "last", reduce, batch_size=2, cache=tmp_path, progress=False)
    assert resumed == []  # served from the finished cache
    assert torch.allclose(again.mean(sites[0]), res.mean(sites[0]))


def test_cache_key_changes_with_model_prompts_and_sites(llama, tiny_lms, tmp_path):
    collect(llama, PROMPTS, Site(1), cache=tmp_path, progress=False)
    collect(llama, PROMPTS[:5], Site(1), cache=tmp_path, progress=False)
    collect(llama, PROMPTS, Site(2), cache=tmp_path, progress=False)
    collect(tiny_lms["qwen2"], PROMPTS, Site(1), cache=tmp_path, progress=False)
    collect(llama, PROMPTS, Site(1), cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/result.safetensors"))) == 4
