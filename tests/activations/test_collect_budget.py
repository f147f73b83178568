"""Collection sizes its batches from the memory the model needs per token (model.memory.token_budget)."""

from __future__ import annotations

import importlib

import pytest
import torch

from safetyscope.activations import Site, collect

collect_mod = importlib.import_module("safetyscope.activations.collect")
REAL_RUN_BATCH = collect_mod._run_batch


def _batches(monkeypatch: pytest.MonkeyPatch, llama, free_bytes: int | None) -> tuple[list[int], torch.Tensor]:
    sizes: list[int] = []

    def spy(lm, items, *args, **kwargs):
        sizes.append(len(items))
        return REAL_RUN_BATCH(lm, items, *args, **kwargs)

    monkeypatch.setattr(collect_mod, "_run_batch", spy)
    monkeypatch.setattr("safetyscope.model.memory.free_memory_bytes", lambda device="cpu": free_bytes)
    prompts = [f"prompt number {i} " + "word " * (i % 7) for i in range(40)]
    res = collect(llama, prompts, Site(1), "last", "none", cache=False, progress=False)
    return sizes, res.per_prompt(Site(1))


def test_little_free_memory_means_smaller_batches_and_the_same_activations(monkeypatch, llama) -> None:
    roomy, a = _batches(monkeypatch, llama, 64 * 2**30)
    tight, b = _batches(monkeypatch, llama, 1)  # budget clamps to its 256-token minimum
    assert roomy == [40] and len(tight) > 1 and sum(tight) == 40
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
