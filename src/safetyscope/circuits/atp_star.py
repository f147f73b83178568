"""AtP* edge scores: attribution patching with the QK fix for attention saturation (Kramár et al. 2024).

EAP scores an edge ``u -> v`` as ``(a_u' - a_u) . dm/dx_v``. For a *query* or *key* receiver the
first-order term goes through the attention softmax, which is badly approximated where attention
saturates (a patched key can take all the attention, with a near-zero gradient at the clean
point). AtP*'s QK fix computes the change of the attention pattern *exactly* and linearises only
after it:

    AtP*(u -> head h's q or k) = sum_{query, key} (A_h[x_v + Δa_u] - A_h[x_v]) * dm/dA_h

where ``A_h[x]`` is head h's pattern recomputed with only that receiver's input changed (for a
key-value head, the heads of its group), and ``dm/dA_h`` is read in the clean run. The pattern is
recomputed by calling the layer's attention module on the patched, normalised block input with
the other projection (k for a q receiver, q for a k receiver) held at its clean output, for every
sender of the layer in one batched call. Every other receiver (values, MLPs, logits) keeps the EAP
score. Scores are means over pairs, summed over positions. Not implemented: AtP*'s GradDrop, and
position-resolved nodes (the graph's edges span every position). Needs separate ``q_proj`` and
``k_proj`` and an attention that returns its pattern under eager attention (Llama, Qwen, Gemma,
OLMo-2, Mistral families).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, cast

import torch
from torch import Tensor, nn

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.circuits.graph import Graph, build_graph
from safetyscope.circuits.graph_io import graph_io
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits, model_inputs
from safetyscope.circuits.senders import sender_deltas, sender_sites
from safetyscope.circuits.taps import gradient_taps
from safetyscope.errors import UnknownArchitectureError
from safetyscope.model.loading import LoadedModel


def attention_module(lm: LoadedModel, layer: int) -> nn.Module:
    """The attention block of ``layer`` with separate ``q_proj`` / ``k_proj`` (raises otherwise)."""
    parent = lm.arch.map.attn_out.rpartition(".")[0]
    attn = lm.arch.layers[layer].get_submodule(parent) if parent else lm.arch.layers[layer]
    if not (hasattr(attn, "q_proj") and hasattr(attn, "k_proj")):
        raise UnknownArchitectureError(
            f"This needs separate q_proj/k_proj in {type(attn).__name__} ({lm.family}); fused projections "
            "(GPT-2 c_attn, GPT-NeoX query_key_value, Phi-3 qkv_proj) are not supported."
        )
    return attn


@contextmanager
def eager_attention(lm: LoadedModel) -> Iterator[None]:
    """Run attention through the eager path (which returns the pattern) inside the block."""
    configs = {
        id(c): c for c in [lm.model.config, *(getattr(m, "config", None) for m in lm.model.modules())] if c
    }
    old = {k: getattr(c, "_attn_implementation", None) for k, c in configs.items()}
    try:
        for c in configs.values():
            c._attn_implementation = "eager"
        yield
    finally:
        for k, c in configs.items():
            c._attn_implementation = old[k]


def _repeat(v: Any, b: int, n: int) -> Any:
    if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == b:
        return v.repeat(n, *([1] * (v.dim() - 1)))
    if isinstance(v, tuple):
        return tuple(_repeat(x, b, n) for x in v)
    return v


def _patterns(
    attn: nn.Module, hidden: Tensor, kwargs: dict[str, Any], hold: nn.Module, held: Tensor
) -> Tensor:
    """The attention pattern of ``attn`` on ``hidden`` with projection ``hold`` returning ``held``."""
    h = hold.register_forward_hook(lambda _m, _a, _o: held)
    try:
        return attn(hidden_states=hidden, **kwargs)[1]
    finally:
        h.remove()


def atp_star_scores(
    lm: LoadedModel, pairs: Pairs, metric: CircuitMetric, *, graph: Graph | None = None, batch_size: int = 8
) -> Graph:
    """Score every edge of ``graph`` with AtP* (see the module docstring)."""
    t0 = time.perf_counter()
    graph = graph or build_graph(lm)
    io = {lio.layer: lio for lio in graph_io(lm, graph)}
    attns = {layer: attention_module(lm, layer) for layer in range(lm.n_layers)}
    block_in = [Site(layer, "resid_pre") for layer in range(lm.n_layers)]
    want = sorted(set(sender_sites(graph)) | set(block_in))
    scores = torch.zeros(len(graph.senders), len(graph.receivers), dtype=torch.float64)
    qk_scores = torch.zeros_like(scores)
    nh, nkv = graph.info["n_heads"], graph.info["n_kv_heads"]
    group = max(1, nh // max(1, nkv))
    for idx in batches(pairs, batch_size):
        clean = [pairs.clean[i] for i in idx]
        _, rec_a = last_logits(lm, clean, want)
        _, rec_b = last_logits(lm, [pairs.corrupt[i] for i in idx], want)
        deltas = sender_deltas(lm, graph, rec_a, rec_b).float()
        kw: dict[int, dict[str, Any]] = {}
        pat: dict[int, Tensor] = {}
        qk: dict[tuple[int, int], Tensor] = {}
        with eager_attention(lm), ExitStack() as stack, torch.enable_grad():
            handles = []
            for layer, attn in attns.items():
                handles.append(
                    attn.register_forward_pre_hook(
                        lambda _m, _a, k, _l=layer, _d=kw: _d.__setitem__(_l, dict(k)), with_kwargs=True
                    )
                )
                handles.append(
                    attn.register_forward_hook(lambda _m, _a, o, _l=layer, _d=pat: _d.__setitem__(_l, o[1]))
                )
                for j, proj in enumerate((cast(nn.Module, attn.q_proj), cast(nn.Module, attn.k_proj))):
                    handles.append(
                        proj.register_forward_hook(
                            lambda _m, _a, o, _k=(layer, j), _d=qk: _d.__setitem__(_k, o.detach())
                        )
                    )
            for handle in handles:
                stack.callback(handle.remove)
            stack.enter_context(edit(lm.arch, block_in[0], lambda _s, h: h.detach().requires_grad_(True)))
            taps = stack.enter_context(gradient_taps(lm, graph, list(io.values())))
            logits = lm.model(**model_inputs(lm, clean)).logits[:, -1]
            f = metric.score(logits, idx).sum() / len(pairs)
            layers = sorted(pat)
            g_pat = dict(
                zip(
                    layers, torch.autograd.grad(f, [pat[la] for la in layers], retain_graph=True), strict=True
                )
            )
            grads = taps.receiver_grads(f)
        scores += (deltas.flatten(1).double() @ grads.flatten(1).double().T).cpu()
        b = len(idx)
        with torch.no_grad(), eager_attention(lm):
            for layer, attn in attns.items():
                recv = [
                    r
                    for r, (la, k) in enumerate(zip(graph.receiver_layer, graph.receiver_kind, strict=True))
                    if la == layer and k in ("q", "k")
                ]
                senders = graph.mask[:, recv[0]].nonzero()[:, 0].tolist()
                n = len(senders)
                x = rec_a[block_in[layer]].float()
                xs = (x.unsqueeze(0) + deltas[senders].to(x.device)).reshape(n * b, *x.shape[1:])
                norm = io[layer].attn_norm
                hidden = (norm(xs.to(x.dtype)) if norm is not None else xs).to(rec_a[block_in[layer]].dtype)
                kws = {k: _repeat(v, b, n) for k, v in kw[layer].items() if k != "hidden_states"}
                base = pat[layer].detach()
                gp = g_pat[layer].detach()
                for j, (kind, hold) in enumerate(
                    (("q", cast(nn.Module, attn.k_proj)), ("k", cast(nn.Module, attn.q_proj)))
                ):
                    held = qk[(layer, 1 - j)].repeat(n, 1, 1)
                    new = _patterns(attn, hidden, kws, hold, held).view(n, b, *base.shape[1:])
                    per_head = (
                        ((new - base.unsqueeze(0)) * gp.unsqueeze(0)).sum((1, 3, 4)).double().cpu()
                    )  # [n, H]
                    for r in recv:
                        if graph.receiver_kind[r] != kind:
                            continue
                        h = graph.receiver_head[r]
                        heads = [h] if kind == "q" else list(range(h * group, (h + 1) * group))
                        qk_scores[senders, r] += per_head[:, heads].sum(1)
    qk_cols = torch.tensor([k in ("q", "k") for k in graph.receiver_kind])
    scores[:, qk_cols] = qk_scores[:, qk_cols]
    graph.scores = scores * graph.mask
    graph.meta = {
        "method": "atp*",
        "metric": metric.to_dict(),
        "n_pairs": len(pairs),
        "seconds": time.perf_counter() - t0,
        "qk_fix": True,
        "graddrop": False,
    }
    return graph
