"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG), every edge in one pass.

For an edge ``u → v`` the score estimates the metric change when ``v`` alone reads ``u``'s
corrupted write instead of its clean one (everything else clean):

    EAP:     (a_u' − a_u) · ∂m/∂x_v                      (gradient at the clean run)
    EAP-IG:  (a_u' − a_u) · (1/m) Σ_{k=1..m} ∂m/∂x_v |_{step k}

``a_u'``/``a_u``: the sender's write in the corrupted/clean run; ``x_v``: the receiver's own
residual input (Syed et al. 2023; Hanna, Pezzelle & Belinkov 2024). Variants of the m steps:

* ``inputs`` (default): the input embeddings are interpolated, ``e' + (k/m)(e − e')``;
* ``activations``: for each block in turn, the block's residual input is interpolated between
  its corrupted and clean values (the final-norm input for the logits), and the gradients are
  read at that block's receivers; ``(n_layers + 1) · m`` passes instead of ``m``.

One backward pass per step yields every receiver's gradient (:mod:`safetyscope.circuits.taps`);
the scores of all edges are then one matrix product of the buffer of sender differences
``[senders, tokens·d]`` with the receiver gradients ``[receivers, tokens·d]``. No loop over edges.
Scores are means over prompt pairs, summed over positions. Under ``torch.distributed`` (e.g.
``torchrun``) each rank scores every ``world``-th pair and the scores are all-reduced, so every
rank ends with the one-process result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.distributed import world
from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.circuits.graph import Graph, build_graph
from safetyscope.circuits.graph_io import graph_io
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits, model_inputs
from safetyscope.circuits.senders import sender_deltas, sender_sites
from safetyscope.circuits.taps import gradient_taps
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

#: EAP-IG interpolation variants.
IG_VARIANTS: tuple[str, ...] = ("inputs", "activations")


def _grad_pass(
    lm: LoadedModel,
    graph: Graph,
    io: Any,
    seqs: list[list[int]],
    rows: Sequence[int],
    metric: CircuitMetric,
    n_total: int,
    site: Site,
    value: Callable[[Tensor], Tensor],
) -> Tensor:
    """One forward + backward with ``site`` set to ``value(h)``: receiver gradients ``[R, b, p, d]``."""

    def leaf(_s: Site, h: Tensor) -> Tensor:
        return value(h).detach().requires_grad_(True)

    with torch.enable_grad():
        with edit(lm.arch, site, leaf), gradient_taps(lm, graph, io) as taps:
            logits = lm.model(**model_inputs(lm, seqs)).logits[:, -1]
        f = metric.score(logits, rows).sum() / n_total
        return taps.receiver_grads(f)


def _interp(a: Tensor, b: Tensor, alpha: float) -> Callable[[Tensor], Tensor]:
    return lambda h: (a + alpha * (b - a)).to(h.dtype)


def edge_attribution(
    lm: LoadedModel,
    pairs: Pairs,
    metric: CircuitMetric,
    *,
    method: str = "eap-ig",
    steps: int = 5,
    variant: str = "inputs",
    batch_size: int = 8,
    graph: Graph | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Graph:
    """Score every edge of ``graph`` (default: :func:`build_graph`) with ``eap`` or ``eap-ig``.

    Returns the graph with ``scores`` (mean over pairs of the estimated metric change when the
    edge alone is corrupted) and ``meta`` (method, steps, variant, seconds, passes).
    """
    if method not in ("eap", "eap-ig"):
        raise SafetyscopeError(f"Unknown edge attribution method {method!r}; use eap or eap-ig.")
    if variant not in IG_VARIANTS:
        raise SafetyscopeError(f"Unknown EAP-IG variant {variant!r}; use one of {list(IG_VARIANTS)}.")
    if steps < 1:
        raise SafetyscopeError(f"--ig-steps must be >= 1, got {steps}.")
    t0 = time.perf_counter()
    graph = graph or build_graph(lm)
    io = graph_io(lm, graph)
    sites = sorted(sender_sites(graph))
    n_layers = lm.n_layers
    block_in = [Site(layer, "resid_pre") for layer in range(n_layers)] + [Site(n_layers - 1, "resid_post")]
    scores = torch.zeros(len(graph.senders), len(graph.receivers), dtype=torch.float64)
    passes, done = 0, 0
    rank, size = world()
    for all_idx in batches(pairs, batch_size):
        idx = [i for i in all_idx if i % size == rank]  # under torch.distributed: every size-th pair
        if not idx:
            continue
        clean = [pairs.clean[i] for i in idx]
        corrupt = [pairs.corrupt[i] for i in idx]
        want = sorted(set(sites) | set(block_in))
        _, rec_a = last_logits(lm, clean, want)
        _, rec_b = last_logits(lm, corrupt, want)
        deltas = sender_deltas(lm, graph, rec_a, rec_b).float()
        grads = torch.zeros(
            len(graph.receivers), *deltas.shape[1:], dtype=torch.float32, device=deltas.device
        )
        if method == "eap":
            grads += _grad_pass(lm, graph, io, clean, idx, metric, len(pairs), block_in[0], lambda h: h)
            passes += 1
        elif variant == "inputs":
            e_a, e_b = rec_a[block_in[0]], rec_b[block_in[0]]
            for k in range(1, steps + 1):
                grads += (
                    _grad_pass(
                        lm,
                        graph,
                        io,
                        clean,
                        idx,
                        metric,
                        len(pairs),
                        block_in[0],
                        _interp(e_b, e_a, k / steps),
                    )
                    / steps
                )
                passes += 1
        else:
            for stage, site in enumerate(block_in):
                chosen = torch.tensor([lay == stage for lay in graph.receiver_layer])
                for k in range(1, steps + 1):
                    g = _grad_pass(
                        lm,
                        graph,
                        io,
                        clean,
                        idx,
                        metric,
                        len(pairs),
                        site,
                        _interp(rec_b[site], rec_a[site], k / steps),
                    )
                    grads[chosen] += g[chosen] / steps
                    passes += 1
        s = deltas.flatten(1).double() @ grads.flatten(1).double().T
        scores += s.cpu()
        done += len(idx)
        if progress is not None:
            progress(done, len(pairs))
    if size > 1:  # scores are sums over pairs (already divided by the global count): add the ranks' parts
        torch.distributed.all_reduce(scores)
        passes_t = torch.tensor([passes])
        torch.distributed.all_reduce(passes_t)
        passes = int(passes_t)
    graph.scores = scores * graph.mask
    graph.meta = {
        "method": method,
        "steps": steps if method == "eap-ig" else 1,
        "variant": variant if method == "eap-ig" else None,
        "metric": metric.to_dict(),
        "n_pairs": len(pairs),
        "passes": passes,
        "seconds": time.perf_counter() - t0,
    }
    return graph
