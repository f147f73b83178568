"""Sender outputs: the residual writes of the input embedding, heads (or post-norm attention
layers) and MLPs, read at the causal core's sites, and their differences between two runs.

A head's write is its slice of the attention-output projection's input (site ``attn_z``) mapped
through that projection's columns without the bias, so the writes of a layer's heads sum to its
``attn_out`` difference exactly; the bias is the same in both runs and cancels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from safetyscope.activations.sites import Site
from safetyscope.circuits.graph import Graph
from safetyscope.circuits.graph_io import linear_apply
from safetyscope.model.loading import LoadedModel


def sender_sites(graph: Graph) -> dict[Site, list[int]]:
    """Each site that carries senders, with the sender indices it carries (in forward order)."""
    out: dict[Site, list[int]] = {}
    for s, (layer, kind) in enumerate(zip(graph.sender_layer, graph.sender_kind, strict=True)):
        point = {"input": "resid_pre", "head": "attn_z", "attn": "attn_out", "mlp": "mlp_out"}[kind]
        site = Site(max(layer, 0), point)  # type: ignore[arg-type]
        out.setdefault(site, []).append(s)
    return out


def site_deltas(lm: LoadedModel, graph: Graph, site: Site, base: Tensor, other: Tensor) -> Tensor:
    """``other − base`` of the writes of every sender at ``site``: ``[k, batch, pos, d_model]``."""
    delta = (other - base).to(base.dtype)
    if site.point != "attn_z":
        return delta.unsqueeze(0)
    b, p, width = delta.shape
    nh = graph.info["n_heads"]
    per_head = delta.view(b, p, nh, width // nh)
    eye = torch.eye(nh, dtype=delta.dtype, device=delta.device)
    masked = torch.einsum("bphd,hg->gbphd", per_head, eye).reshape(nh, b, p, width)
    return linear_apply(lm.arch.attn_out(site.layer), masked, lm.arch.map.writer_weight_layout, bias=False)


def sender_deltas(
    lm: LoadedModel, graph: Graph, base: dict[Site, Tensor], other: dict[Site, Tensor]
) -> Tensor:
    """``[n_senders, batch, pos, d_model]``: every sender's write in ``other`` minus in ``base``."""
    parts = [None] * len(graph.senders)
    for site, idx in sender_sites(graph).items():
        d = site_deltas(lm, graph, site, base[site], other[site])
        for k, s in enumerate(idx):
            parts[s] = d[k]
    return torch.stack(parts)  # type: ignore[arg-type]
