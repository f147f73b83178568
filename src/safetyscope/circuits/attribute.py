"""One call from prompt pairs to a scored graph, a pruned circuit and its faithfulness (the CLI's engine).

:func:`attribute` scores the graph with ``atp`` (node attribution; a circuit of the top nodes is
every edge between them), ``eap``, ``eap-ig`` or ``exact`` (exact edge patching of every edge),
then evaluates top-n circuits of growing size (the faithfulness curve, CPR, CMD), the top-``n``
circuit's sufficiency and necessity, and random circuits of the same size as the control.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from safetyscope.circuits.atp import node_attribution
from safetyscope.circuits.eap import edge_attribution
from safetyscope.circuits.evaluate import (
    area_curves,
    circuit_metrics,
    faithfulness,
    random_circuits,
    random_connected_circuits,
)
from safetyscope.circuits.exact import exact_edge_scores
from safetyscope.circuits.graph import Graph, build_graph
from safetyscope.circuits.metric import CircuitMetric, circuit_metric
from safetyscope.circuits.pairs import encode_pairs, pair_logits
from safetyscope.circuits.prune import receiver_owners, top_n
from safetyscope.circuits.result import AttributionResult
from safetyscope.circuits.scrub import scrubbed_loss
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

#: Methods :func:`attribute` accepts.
METHODS: tuple[str, ...] = ("atp", "eap", "eap-ig", "exact")


def curve_sizes(n_edges: int, top: int) -> list[int]:
    """Circuit sizes of the faithfulness curve: 0, a 1-2-5 ladder, ``top`` and every edge."""
    ladder = [0] + [m * 10**e for e in range(7) for m in (1, 2, 5)]
    return sorted({s for s in ladder if s < n_edges} | {min(top, n_edges), n_edges})


def node_scores(graph: Graph, atp: dict[str, list[float]]) -> Tensor:
    """AtP of every sender (summed over positions): input = ``L0.resid_pre``, heads, MLPs, post-norm attention."""
    out = torch.zeros(len(graph.senders), dtype=torch.float64)
    for s, (layer, kind, head) in enumerate(
        zip(graph.sender_layer, graph.sender_kind, graph.sender_head, strict=True)
    ):
        key = {
            "input": "L0.resid_pre",
            "head": f"L{layer}.h{head}",
            "attn": f"L{layer}.attn_out",
            "mlp": f"L{layer}.mlp_out",
        }[kind]
        out[s] = sum(atp[key])
    return out


def node_circuit(graph: Graph, senders: Tensor) -> Tensor:
    """Every edge from a chosen sender (or the input) into a chosen node's receiver (or the logits)."""
    keep = senders.clone()
    keep[0] = True
    owners = receiver_owners(graph)
    last = len(graph.receivers) - 1
    recv = torch.tensor([r == last or (bool(own) and bool(keep[own].any())) for r, own in enumerate(owners)])
    return graph.mask & keep[:, None] & recv[None, :]


def _circuits_for(graph: Graph, sizes: Sequence[int], nodes: Tensor | None) -> tuple[list[Tensor], list[int]]:
    if nodes is None:
        return [top_n(graph, n) for n in sizes], list(sizes)
    order = nodes.abs().argsort(descending=True)
    circuits = []
    for k in range(len(graph.senders) + 1):
        chosen = torch.zeros(len(graph.senders), dtype=torch.bool)
        chosen[order[:k]] = True
        circuits.append(graph.mask.clone() if k == len(graph.senders) else node_circuit(graph, chosen))
    return circuits, [int(c.sum()) for c in circuits]


def attribute(
    lm: LoadedModel,
    clean: Sequence[str],
    corrupt: Sequence[str],
    *,
    method: str = "eap-ig",
    steps: int = 5,
    variant: str = "inputs",
    metric: str | CircuitMetric | None = None,
    answer: str | None = None,
    wrong: str | None = None,
    top: int = 50,
    random_draws: int = 5,
    evaluate: bool = True,
    batch_size: int = 8,
    chat: bool = True,
    seed: int = 0,
    scrub_draws: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> AttributionResult:
    """Score, prune and evaluate (see the module docstring). ``top``: edges in the reported circuit.

    ``scrub_draws`` > 0 adds the scrubbed loss (:mod:`safetyscope.circuits.scrub`) of the top
    circuit and of its random controls, averaged over that many resamplings (0: skip it).
    """
    if method not in METHODS:
        raise SafetyscopeError(f"Unknown method {method!r}; use one of {list(METHODS)}.")
    if top < 1:
        raise SafetyscopeError(f"--top must be >= 1, got {top}.")
    t0 = time.perf_counter()
    pairs = encode_pairs(lm, clean, corrupt, chat)
    a, b = pair_logits(lm, pairs, batch_size)
    met = (
        metric
        if isinstance(metric, CircuitMetric)
        else circuit_metric(
            metric, lm.tokenizer, clean_logits=a, corrupt_logits=b, answer=answer, wrong=wrong
        )
    )
    rows = list(range(len(pairs)))
    m_clean, m_corrupt = float(met.score(a, rows).mean()), float(met.score(b, rows).mean())
    nodes = None
    if method in ("eap", "eap-ig"):
        graph = edge_attribution(
            lm,
            pairs,
            met,
            method=method,
            steps=steps,
            variant=variant,
            batch_size=batch_size,
            progress=progress,
        )
    else:
        graph = build_graph(lm)
        if method == "exact":
            graph.scores = torch.zeros(graph.mask.shape, dtype=torch.float64)
            graph.scores[graph.mask] = exact_edge_scores(
                lm, pairs, met, graph, graph.edge_index(), batch_size=batch_size, progress=progress
            )
        else:
            atp = node_attribution(lm, pairs, met, batch_size=batch_size)
            nodes = node_scores(graph, atp.scores)  # node scores; edges stay unscored
        graph.meta = {"method": method, "metric": met.to_dict(), "n_pairs": len(pairs)}
    seconds = time.perf_counter() - t0
    curve: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    if evaluate:
        circuits, sizes = _circuits_for(graph, curve_sizes(graph.n_edges, top), nodes)
        k_circuit = top_n(graph, top) if nodes is None else circuits[min(top, len(circuits) - 1)]
        k = int(k_circuit.sum())
        controls = random_circuits(graph, k, random_draws, seed)
        connected = random_connected_circuits(graph, k, random_draws, seed)
        extra = [k_circuit, graph.mask & ~k_circuit, *controls, *connected]
        values = circuit_metrics(lm, pairs, met, graph, [*circuits, *extra], batch_size=batch_size).tolist()
        faith = [faithfulness(v, m_clean, m_corrupt) for v in values]
        curve = [{"n_edges": n, "value": f} for n, f in zip(sizes, faith[: len(sizes)], strict=True)]
        f_k, f_rest = faith[len(sizes)], faith[len(sizes) + 1]
        f_rand = [f for f in faith[len(sizes) + 2 : len(sizes) + 2 + len(controls)] if f is not None]
        f_conn = [f for f in faith[len(sizes) + 2 + len(controls) :] if f is not None]
        summary = {
            "k": k,
            "sufficiency": f_k,
            "necessity": None if f_rest is None else 1.0 - f_rest,
            "random_faithfulness": f_rand,
            "random_mean": sum(f_rand) / len(f_rand) if f_rand else None,
            "random_max": max(f_rand) if f_rand else None,
            "random_connected_faithfulness": f_conn,
            "random_connected_mean": sum(f_conn) / len(f_conn) if f_conn else None,
            "random_connected_max": max(f_conn) if f_conn else None,
        }
        if scrub_draws > 0:
            sc = scrubbed_loss(lm, pairs, met, graph, [k_circuit, *controls], draws=scrub_draws, seed=seed,
                               batch_size=batch_size)
            s_rand = [v for v in sc.loss_recovered[1:] if v is not None]
            summary.update(
                scrubbed_loss_recovered=sc.loss_recovered[0],
                scrubbed_random_mean=sum(s_rand) / len(s_rand) if s_rand else None,
                scrub_original=sc.original, scrub_random_baseline=sc.random_baseline, scrub_draws=scrub_draws,
            )
        if all(c["value"] is not None for c in curve):
            cpr, cmd = area_curves([c["n_edges"] for c in curve], [c["value"] for c in curve], graph.n_edges)
            summary.update(cpr=cpr, cmd=cmd)
    from safetyscope import __version__

    prov = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "n_pairs": len(pairs),
        "chat": chat,
        "steps": steps if method == "eap-ig" else None,
        "variant": variant if method == "eap-ig" else None,
        "seed": seed,
        "safetyscope_version": __version__,
    }
    node_list = (
        None
        if nodes is None
        else [
            {"node": graph.senders[s], "score": float(nodes[s])}
            for s in nodes.abs().argsort(descending=True).tolist()
        ]
    )
    return AttributionResult(
        method=method,
        metric=met.to_dict(),
        clean_metric=m_clean,
        corrupt_metric=m_corrupt,
        graph=graph.to_dict(),
        top=top,
        circuit=summary,
        faithfulness=curve,
        seconds=seconds,
        nodes=node_list,
        provenance=prov,
    )
