"""Data-parallel SAE training on one machine: spawn ``world_size`` gloo ranks and train together.

Under ``torchrun`` (or any initialised process group) :func:`~safetyscope.sae.train.train_sae`
is already data-parallel: every rank reads the same shuffled batches, keeps rows ``rank::world``
and all-reduces gradients. :func:`train_data_parallel` is the no-launcher form: it spawns the
ranks itself (CPU, gloo) and returns rank 0's result, the same SAE one process would train (up to
float summation order).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from safetyscope.sae.model import SparseAutoencoder
from safetyscope.sae.stream import ActivationStore
from safetyscope.sae.train import TrainConfig, TrainResult, sae_config_for, train_sae


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world_size: int, port: int, store: ActivationStore, cfg: TrainConfig, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        res = train_sae(store, cfg, progress=False)
        if rank == 0:
            save_file(res.sae.state_tensors(), out)
            Path(out + ".json").write_text(str(res.scale))
    finally:
        dist.destroy_process_group()


def train_data_parallel(store: ActivationStore, cfg: TrainConfig, world_size: int = 2) -> TrainResult:
    """Train on ``world_size`` spawned gloo ranks; return the SAE of rank 0 (weights reading raw activations)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "sae.safetensors")
        mp.spawn(_worker, args=(world_size, _free_port(), store, cfg, out), nprocs=world_size, join=True)
        weights = load_file(out)
        scale = float(Path(out + ".json").read_text())
    sae = SparseAutoencoder(sae_config_for(store, cfg))
    sae.cfg.metadata["normalisation_scale"] = scale
    with torch.no_grad():
        for name, tensor in weights.items():
            getattr(sae, name).copy_(tensor)
    return TrainResult(sae, cfg, scale, provenance={"world_size": world_size, "store": store.provenance})
