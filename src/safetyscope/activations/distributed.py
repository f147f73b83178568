"""Data-parallel collection with ``torch.distributed`` (gloo on CPU, nccl on GPU).

Launch the same script on every worker (``torchrun --nproc-per-node N script.py``). Each rank
collects every ``world``-th prompt; streaming sums are all-reduced, kept rows are gathered and
put back in input order, so every rank ends with the same result as a one-process run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from safetyscope.activations.result import ActivationResult
from safetyscope.data.prompts import PromptSet


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when ``torch.distributed`` is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(prompts: PromptSet, rank: int, size: int) -> PromptSet:
    """Every ``size``-th prompt starting at ``rank``."""
    return PromptSet(prompts.prompts[rank::size], f"{prompts.name}[shard {rank}/{size}]")


def combine(local: ActivationResult, prompts: PromptSet, rank: int, size: int) -> ActivationResult:
    """Turn one rank's shard result into the full-set result on every rank."""
    provenance: dict[str, Any] = dict(local.provenance, prompts=prompts.name, prompt_hash=prompts.hash,
                                      n_prompts=len(prompts), world_size=size)
    if local.reduce != "none":
        for mom in local.moments.values():
            mom.all_reduce()
        return ActivationResult(local.sites, local.positions, local.reduce, len(prompts),
                                moments=local.moments, provenance=provenance)
    assert local.prompt_index is not None and local.token_position is not None
    mine = (local.rows, local.prompt_index * size + rank, local.token_position)
    gathered: list[Any] = [None] * size
    dist.all_gather_object(gathered, mine)
    index = torch.cat([g[1] for g in gathered])
    order = torch.sort(index, stable=True).indices
    rows = {k: torch.cat([g[0][k] for g in gathered])[order] for k in local.rows}
    return ActivationResult(local.sites, local.positions, "none", len(prompts), rows=rows,
                            prompt_index=index[order],
                            token_position=torch.cat([g[2] for g in gathered])[order],
                            provenance=provenance)
