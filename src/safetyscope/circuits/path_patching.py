"""Path patching (Wang et al. 2023; compendium 5.1): a sender's corrupted write along chosen paths only.

The clean run is repeated with the corrupted-minus-clean write of the ``senders`` added to the
input of the chosen ``receivers`` and of nothing else: every other component still reads the
clean stream, so the change reaches the metric *only* through the paths ``sender → receiver``
(e.g. ``a2.h3 → logits``, a head's direct effect; ``a0.h1 → m1``, head to MLP), with everything
else frozen at its clean value. Several senders patched together patch the sum of their writes.
Receivers are named as in the graph (``logits``, ``m1``, ``a2.h0<q>``) or by a pattern:
``mlp`` (every MLP), ``q``/``k``/``v`` (every head's query/key/value input), ``all``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from safetyscope.circuits.graph import Graph, build_graph
from safetyscope.circuits.graph_io import graph_io
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits, model_inputs
from safetyscope.circuits.senders import sender_deltas, sender_sites
from safetyscope.circuits.taps import receiver_patches
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel


@dataclass(frozen=True)
class PathEffect:
    """Mean metric change over pairs, with the senders and receivers actually patched."""

    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    effect: float


def resolve_receivers(graph: Graph, spec: Sequence[str]) -> list[int]:
    """Receiver indices for names or the patterns ``mlp``, ``q``, ``k``, ``v``, ``all``."""
    out: list[int] = []
    for item in spec:
        if item == "all":
            out.extend(range(len(graph.receivers)))
        elif item in ("mlp", "q", "k", "v"):
            out.extend(r for r, k in enumerate(graph.receiver_kind) if k == item)
        elif item in graph.receivers:
            out.append(graph.receivers.index(item))
        else:
            raise SafetyscopeError(
                f"Unknown receiver {item!r}; use a graph receiver name (logits, m1, "
                "a2.h0<q>) or one of mlp, q, k, v, all."
            )
    return sorted(set(out))


@torch.no_grad()
def path_patch(
    lm: LoadedModel,
    pairs: Pairs,
    metric: CircuitMetric,
    senders: Sequence[str],
    receivers: Sequence[str],
    *,
    graph: Graph | None = None,
    batch_size: int = 8,
) -> PathEffect:
    """``m(clean, senders' corrupted writes reach only receivers) − m(clean)``, mean over pairs.

    Receivers the senders do not precede are skipped (a path must run forward).
    """
    graph = graph or build_graph(lm)
    bad = [s for s in senders if s not in graph.senders]
    if bad or not senders:
        raise SafetyscopeError(
            f"Unknown sender(s) {bad or list(senders)}; senders are input, aL.hH (or aL in "
            f"post-norm families) and mL, e.g. {graph.senders[1:4]}."
        )
    s_idx = [graph.senders.index(s) for s in senders]
    r_idx = [r for r in resolve_receivers(graph, receivers) if any(graph.mask[s, r] for s in s_idx)]
    if not r_idx:
        raise SafetyscopeError(f"No receiver in {list(receivers)} reads the stream after {list(senders)}.")
    io = graph_io(lm, graph)
    sites = sorted(sender_sites(graph))
    total = 0.0
    for idx in batches(pairs, batch_size):
        clean = [pairs.clean[i] for i in idx]
        logits_a, rec_a = last_logits(lm, clean, sites)
        _, rec_b = last_logits(lm, [pairs.corrupt[i] for i in idx], sites)
        deltas = sender_deltas(lm, graph, rec_a, rec_b)
        fixes: dict[int, Tensor] = {}
        for r in r_idx:
            chosen = [s for s in s_idx if graph.mask[s, r]]
            fixes[r] = deltas[chosen].sum(0)
        with receiver_patches(lm, graph, io, lambda r, _x, _f=fixes: _f.get(r)):
            logits = lm.model(**model_inputs(lm, clean)).logits[:, -1].float()
        total += float((metric.score(logits, idx) - metric.score(logits_a, idx)).sum())
    return PathEffect(tuple(senders), tuple(graph.receivers[r] for r in r_idx), total / len(pairs))
