"""Gradient-keeping reads: the causal core's :func:`~safetyscope.activations.record`, kept differentiable.

``with read_with_grad(arch, sites) as seen:`` runs forward passes whose activations at ``sites``
land in ``seen`` *without* being detached, so ``torch.autograd.grad(metric, [seen[s] ...])`` gives
``∂metric/∂activation`` at each site. The input embedding is made a leaf that requires grad, so
the graph exists even when the model's parameters are frozen. The hooks are removed when the
block exits, also when it raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit, record
from safetyscope.activations.sites import Site
from safetyscope.model.architectures import ResolvedArchitecture


@contextmanager
def read_with_grad(arch: ResolvedArchitecture, sites: Sequence[Site]) -> Iterator[dict[Site, Tensor]]:
    """Yield a dict filled with each site's activation (graph kept) during forward passes in the block."""
    seen: dict[Site, Tensor] = {}

    def leaf(_s: Site, h: Tensor) -> Tensor:
        return h.detach().requires_grad_(True)

    with ExitStack() as stack, torch.enable_grad():
        stack.enter_context(edit(arch, Site(0, "resid_pre"), leaf))
        stack.enter_context(record(arch, list(sites), seen.__setitem__, stop_early=False))
        yield seen
