"""Corrupt caches say how to recover (which folder to delete, or how to run without the cache)."""

import pytest
import torch

from safetyscope.activations import Site, collect
from safetyscope.errors import CacheError
from safetyscope.paths import cache_dir
from safetyscope.pipelines.audit_cache import StepRunner


def test_corrupt_activation_cache_names_the_folder(llama):
    prompts = ["explain how to bake bread", "name three colours", "what is two plus two"]
    first = collect(llama, prompts, Site(1), "last", "mean", cache=True, progress=False)
    entries = list(cache_dir("activations").rglob("result.safetensors"))
    assert entries
    for e in entries:
        e.write_bytes(e.read_bytes()[:40])  # truncated by a crash or a full disk
    with pytest.raises(CacheError, match=r"Delete the folder .* or run without the cache"):
        collect(llama, prompts, Site(1), "last", "mean", cache=True, progress=False)
    again = collect(llama, prompts, Site(1), "last", "mean", cache=False, progress=False)
    assert torch.allclose(again.mean(Site(1)), first.mean(Site(1)))


def test_corrupt_audit_step_tensors_say_how_to_recompute(tmp_path):
    runner = StepRunner(tmp_path, show=False)
    runner.run("acts", "acts", lambda tick: ({"ok": 1}, {"x": torch.ones(2)}))
    (tmp_path / "acts.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(CacheError, match=r"Delete .*acts\.\* and rerun"):
        runner.tensors("acts")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
