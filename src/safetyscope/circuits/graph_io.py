"""Where each graph receiver reads the residual stream in a concrete model, per family.

The architecture map names the residual *writers*; the graph also needs the *readers*: the norm
in front of attention (``input_layernorm``, GPT-2's ``ln_1``; none in OLMo-2), the projections
that turn it into queries, keys and values (separate ``q_proj``/``k_proj``/``v_proj``, Phi-3's
fused ``qkv_proj``, GPT-2's fused ``c_attn``, GPT-NeoX's per-head interleaved
``query_key_value``) with the output columns of each head, and the module whose input is the
MLP's residual input (its pre-norm, or the MLP itself in OLMo-2). An attention layout not listed
here fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from safetyscope.circuits.graph import Graph
from safetyscope.errors import UnknownArchitectureError
from safetyscope.model.loading import LoadedModel


@dataclass
class Projection:
    """One q/k/v projection module and, for each receiver it serves, that receiver's output columns."""

    module: nn.Module
    receivers: list[int]
    cols: list[Tensor]


@dataclass
class LayerIO:
    """The reading side of one block: attention norm, q/k/v projections, the MLP-input module."""

    layer: int
    attn_norm: nn.Module | None
    projections: list[Projection]
    mlp_in: nn.Module
    mlp_receiver: int
    layout: str


def linear_apply(module: nn.Module, x: Tensor, layout: str, bias: bool = True) -> Tensor:
    """``module(x)`` from its weights, without calling the module (so its hooks do not fire)."""
    w = module.weight
    y = x @ (w.T if layout == "out_in" else w)
    b = getattr(module, "bias", None)
    return y + b if bias and b is not None else y


def _cols(start: int, width: int) -> Tensor:
    return torch.arange(start, start + width)


def _projections(attn: nn.Module, graph: Graph, layer: int) -> tuple[list[Projection], str]:
    info = graph.info
    nh, nkv, dh = info["n_heads"], info["n_kv_heads"], info["d_head"]
    rec = {
        (k, h): r
        for r, (lay, k, h) in enumerate(
            zip(graph.receiver_layer, graph.receiver_kind, graph.receiver_head, strict=True)
        )
        if lay == layer
    }
    if all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj")):
        out = []
        for kind, count in (("q", nh), ("k", nkv), ("v", nkv)):
            out.append(
                Projection(
                    getattr(attn, f"{kind}_proj"),
                    [rec[(kind, h)] for h in range(count)],
                    [_cols(h * dh, dh) for h in range(count)],
                )
            )
        return out, "out_in"
    if hasattr(attn, "qkv_proj") or hasattr(attn, "c_attn"):  # [q | k | v] blocks (Phi-3, GPT-2)
        module = attn.qkv_proj if hasattr(attn, "qkv_proj") else attn.c_attn
        recs, cols = [], []
        offsets = {"q": 0, "k": nh * dh, "v": (nh + nkv) * dh}
        for kind, count in (("q", nh), ("k", nkv), ("v", nkv)):
            for h in range(count):
                recs.append(rec[(kind, h)])
                cols.append(_cols(offsets[kind] + h * dh, dh))
        return [Projection(module, recs, cols)], "in_out" if hasattr(attn, "c_attn") else "out_in"
    if hasattr(attn, "query_key_value"):  # GPT-NeoX: per head [q_h | k_h | v_h]
        recs, cols = [], []
        for i, kind in enumerate("qkv"):
            for h in range(nh):
                recs.append(rec[(kind, h)])
                cols.append(_cols(h * 3 * dh + i * dh, dh))
        return [Projection(attn.query_key_value, recs, cols)], "out_in"
    raise UnknownArchitectureError(
        f"circuits: no q/k/v projection layout for {type(attn).__name__} (family {info['family']}); "
        "supported: q_proj/k_proj/v_proj, qkv_proj, c_attn, query_key_value."
    )


def graph_io(lm: LoadedModel, graph: Graph) -> list[LayerIO]:
    """The reading modules of every block of ``lm`` for ``graph``."""
    parent = lm.arch.map.attn_out.rsplit(".", 1)[0]
    mlp_parent = lm.arch.map.mlp_out.rsplit(".", 1)[0]
    out = []
    for layer in range(lm.n_layers):
        block = lm.arch.layers[layer]
        attn = block.get_submodule(parent)
        projs, layout = _projections(attn, graph, layer)
        norm = next((getattr(block, n) for n in ("input_layernorm", "ln_1") if hasattr(block, n)), None)
        if graph.info["post_norm"]:
            names = ("pre_feedforward_layernorm",)
        else:
            names = ("post_attention_layernorm", "ln_2")
        mlp_in = next((getattr(block, n) for n in names if hasattr(block, n)), None) or block.get_submodule(
            mlp_parent
        )
        mlp_r = next(
            r
            for r, (lay, k) in enumerate(zip(graph.receiver_layer, graph.receiver_kind, strict=True))
            if lay == layer and k == "mlp"
        )
        out.append(LayerIO(layer, norm, projs, mlp_in, mlp_r, layout))
    return out
