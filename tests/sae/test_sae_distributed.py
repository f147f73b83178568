"""Data-parallel training on 2 gloo ranks gives the SAE one process trains."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_sae_train import planted_store

from safetyscope.sae import TrainConfig, train_sae
from safetyscope.sae.distributed import train_data_parallel


def test_two_gloo_ranks_equal_one_process():
    # BatchTopK exercises every cross-rank step: the batch-wide threshold (all_gather), the EMA of its
    # minimum (all_reduce MIN), dead-latent counts for the aux loss (all_reduce MAX) and the gradients.
    arch = "batchtopk"
    store = planted_store(n=1024)
    cfg = TrainConfig(architecture=arch, d_sae=32, k=4, steps=25, batch_size=64, buffer_rows=256, dead_tokens=64)
    one = train_sae(store, cfg, progress=False)
    two = train_data_parallel(store, cfg, world_size=2)
    assert two.scale == pytest.approx(one.scale)
    for name, ref in one.sae.state_tensors().items():
        assert torch.allclose(two.sae.state_tensors()[name], ref, atol=1e-5), name
