"""Circuit evaluation: the metric of the model restricted to a circuit, faithfulness and its controls.

Running a circuit ``C``: every receiver ``v`` reads the clean-run writes of its senders in ``C``
and the corrupted-run writes of all others,

    x_v = x_v,corrupt − Σ_{u→v ∈ C} (a_u,corrupt − a_u,run)

computed during one forward pass (each sender's write in *this* run is read when it happens).
The empty circuit is the corrupted run and the full graph the clean run, exactly. Many circuits
share one pass (one batch row per circuit and pair).

* faithfulness ``(m(C) − m(corrupt)) / (m(model) − m(corrupt))`` (Wang et al. 2023; Hanna et al. 2024);
* CPR: area under the faithfulness curve over circuit size (fraction of edges; higher is better);
  CMD: area under ``|1 − faithfulness|`` (lower is better);
* sufficiency = faithfulness of C; necessity = ``(m(model) − m(model without C)) / (m(model) − m(corrupt))``;
* control: random circuits with as many edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from safetyscope.activations.hooks import record
from safetyscope.activations.sites import Site
from safetyscope.circuits.graph import Graph
from safetyscope.circuits.graph_io import LayerIO, graph_io
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits, model_inputs
from safetyscope.circuits.senders import sender_sites, site_deltas
from safetyscope.circuits.taps import receiver_patches
from safetyscope.model.loading import LoadedModel


def _run_chunk(
    lm: LoadedModel,
    graph: Graph,
    io: list[LayerIO],
    rec_b: dict[Site, Tensor],
    corr_in: dict[int, Tensor],
    chunk: Tensor,
    clean: list[list[int]],
) -> Tensor:
    """Last-token logits of ``clean`` under each circuit of ``chunk`` (rows circuit-major)."""
    by_site = sender_sites(graph)
    c, b = chunk.shape[0], len(clean)
    buffer: dict[int, Tensor] = {}

    def capture(site: Site, h: Tensor) -> None:  # this run's writes, as corrupted minus run
        d = site_deltas(lm, graph, site, h, rec_b[site].repeat(c, 1, 1))
        for k, s in enumerate(by_site[site]):
            buffer[s] = d[k]

    def weighted(senders: list[int], w: Tensor) -> Tensor:
        return torch.einsum(
            "jk,kjpd->jpd", w.repeat_interleave(b, 0), torch.stack([buffer[s] for s in senders])
        )

    def correction(r: int, x: Tensor) -> Tensor:
        fix = corr_in[r].repeat(c, 1, 1).to(x.dtype) - x
        win = chunk[:, :, r]
        inside = win.any(0).nonzero()[:, 0].tolist()
        outside = (graph.mask[:, r] & ~win.all(0)).nonzero()[:, 0].tolist()
        if len(inside) <= len(outside):  # x_corr − x − Σ_in Δ
            return fix - weighted(inside, win[:, inside].to(x.dtype)) if inside else fix
        if not outside:
            return torch.zeros_like(fix)
        return weighted(outside, (~win[:, outside]).to(x.dtype))  # the same: Σ_out Δ

    with (
        record(lm.arch, sorted(by_site), capture, stop_early=False),
        receiver_patches(lm, graph, io, correction),
    ):
        return lm.model(**model_inputs(lm, clean * c)).logits[:, -1].float()


@torch.no_grad()
def circuit_metrics(
    lm: LoadedModel,
    pairs: Pairs,
    metric: CircuitMetric,
    graph: Graph,
    circuits: Sequence[Tensor],
    *,
    batch_size: int = 8,
    circuits_per_pass: int = 8,
) -> Tensor:
    """Mean metric over pairs of the model restricted to each circuit (boolean ``[senders, receivers]`` masks)."""
    io = graph_io(lm, graph)
    sites = sorted(sender_sites(graph))
    circ = (
        torch.stack([c.bool() & graph.mask for c in circuits])
        if circuits
        else torch.zeros(0, *graph.mask.shape)
    )
    out = torch.zeros(len(circ), dtype=torch.float64)
    for idx in batches(pairs, batch_size):
        clean = [pairs.clean[i] for i in idx]
        with receiver_patches(lm, graph, io, lambda _r, _x: None) as state:
            _, rec_b = last_logits(lm, [pairs.corrupt[i] for i in idx], sites)
        corr_in = dict(state.inputs)
        for start in range(0, len(circ), circuits_per_pass):
            chunk = circ[start : start + circuits_per_pass]
            logits = _run_chunk(lm, graph, io, rec_b, corr_in, chunk, clean)
            out[start : start + len(chunk)] += (
                metric.score(logits, idx * len(chunk)).view(len(chunk), -1).sum(1).cpu()
            )
    return out / len(pairs)


@torch.no_grad()
def circuit_logits(
    lm: LoadedModel, pairs: Pairs, graph: Graph, circuits: Sequence[Tensor], *, batch_size: int = 8
) -> Tensor:
    """Last-token logits ``[n_circuits, n_pairs, vocab]`` of the model restricted to each circuit (as above)."""
    io = graph_io(lm, graph)
    sites = sorted(sender_sites(graph))
    circ = torch.stack([c.bool() & graph.mask for c in circuits])
    out = torch.zeros(len(circ), len(pairs), lm.vocab_size)
    for idx in batches(pairs, batch_size):
        clean = [pairs.clean[i] for i in idx]
        with receiver_patches(lm, graph, io, lambda _r, _x: None) as state:
            _, rec_b = last_logits(lm, [pairs.corrupt[i] for i in idx], sites)
        corr_in = dict(state.inputs)
        logits = _run_chunk(lm, graph, io, rec_b, corr_in, circ, clean)
        out[:, idx] = logits.view(len(circ), len(idx), -1)[..., : lm.vocab_size].cpu()
    return out


def faithfulness(value: float, clean: float, corrupt: float) -> float | None:
    """``(value − corrupt) / (clean − corrupt)``; ``None`` when clean and corrupted coincide."""
    gap = clean - corrupt
    return None if abs(gap) < 1e-12 else (value - corrupt) / gap


def area_curves(sizes: Sequence[int], faith: Sequence[float], n_edges: int) -> tuple[float, float]:
    """``(CPR, CMD)``: trapezoid areas under faithfulness and under ``|1 − faithfulness|`` over edge fraction."""
    x = torch.tensor([s / n_edges for s in sizes], dtype=torch.float64)
    y = torch.tensor(list(faith), dtype=torch.float64)
    order = x.argsort()
    x, y = x[order], y[order]
    return float(torch.trapezoid(y, x)), float(torch.trapezoid((1 - y).abs(), x))


def random_circuits(graph: Graph, n: int, draws: int, seed: int = 0) -> list[Tensor]:
    """``draws`` circuits of ``n`` edges drawn uniformly from the graph's real edges."""
    gen = torch.Generator().manual_seed(seed)
    idx = graph.edge_index()
    out = []
    for _ in range(draws):
        pick = idx[torch.randperm(len(idx), generator=gen)[:n]]
        m = torch.zeros_like(graph.mask)
        m[pick[:, 0], pick[:, 1]] = True
        out.append(m)
    return out


def random_connected_circuits(graph: Graph, n: int, draws: int, seed: int = 0) -> list[Tensor]:
    """``draws`` circuits of ``n`` edges grown like :func:`~safetyscope.circuits.greedy` from the logits,
    but picking each next edge uniformly among the edges into nodes already in the circuit.

    A stronger control than :func:`random_circuits`: its edges form paths to the logits, so it can
    carry information (uniform random edges almost never do).
    """
    from safetyscope.circuits.prune import receiver_owners

    gen = torch.Generator().manual_seed(seed)
    owners = receiver_owners(graph)
    n_r = len(graph.receivers)
    out = []
    for _ in range(draws):
        active = torch.zeros(n_r, dtype=torch.bool)
        active[n_r - 1] = True
        chosen = torch.zeros_like(graph.mask)
        for _ in range(min(n, graph.n_edges)):
            cand = (graph.mask & active[None, :] & ~chosen).nonzero()
            if len(cand) == 0:
                break
            s, r = cand[int(torch.randint(len(cand), (1,), generator=gen))].tolist()
            chosen[s, r] = True
            active |= torch.tensor([s in own for own in owners])
        out.append(chosen)
    return out
