"""Scrubbed loss (causal scrubbing, Chan et al. 2022; compendium 7.4): test a circuit hypothesis by
resample-ablating everything outside it.

For every clean prompt ``x`` a *resample partner* ``x'`` is drawn (seeded) from a pool of inputs —
the clean and the corrupted prompts together, so the pool holds both behaviours — among those of
the same token length, never ``x`` itself. The circuit is then run exactly as in
:func:`~safetyscope.circuits.circuit_metrics`, with ``x'`` in the place of the counterfactual: every
edge in the circuit carries ``x``'s activations and every edge outside it carries ``x'``'s. With
``m`` the circuit metric averaged over prompts (and over ``draws`` independent resamplings),

    loss recovered = (m(scrubbed) − m(random baseline)) / (m(original) − m(random baseline))

where ``m(original)`` is the model on ``x`` (the full circuit: exactly 1) and ``m(random
baseline)`` every edge resampled (the empty circuit: exactly 0). Near 1: the hypothesis explains
the behaviour on the data distribution; near 0: it explains none of it. Unlike faithfulness,
whose "outside" is one hand-made counterfactual, the outside here is a random input, so a circuit
must also be insensitive to everything the hypothesis says does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from safetyscope.causal.patch_spec import PatchingError
from safetyscope.circuits.evaluate import circuit_metrics, faithfulness
from safetyscope.circuits.graph import Graph
from safetyscope.circuits.metric import CircuitMetric
from safetyscope.circuits.pairs import Pairs, batches, last_logits
from safetyscope.model.loading import LoadedModel


@dataclass
class ScrubResult:
    """Loss recovered per circuit, with the original and random-baseline metrics it is scaled by."""

    loss_recovered: list[float | None]
    scrubbed: list[float]
    original: float
    random_baseline: float
    draws: int
    seed: int


def resample_pool_partners(pool_lengths: Sequence[int], n_clean: int, seed: int) -> list[int]:
    """For each of the first ``n_clean`` pool items, a seeded random *other* pool item of equal length."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_clean):
        others = [j for j, m in enumerate(pool_lengths) if m == pool_lengths[i] and j != i]
        if not others:
            raise PatchingError(
                f"Scrubbing needs another prompt of the same token length as clean prompt {i} "
                f"({pool_lengths[i]} tokens) to resample from."
            )
        out.append(others[int(torch.randint(len(others), (1,), generator=gen))])
    return out


@torch.no_grad()
def scrubbed_loss(
    lm: LoadedModel,
    pairs: Pairs,
    metric: CircuitMetric,
    graph: Graph,
    circuits: Sequence[Tensor],
    *,
    draws: int = 1,
    seed: int = 0,
    batch_size: int = 8,
) -> ScrubResult:
    """Loss recovered of each circuit under resample ablation of everything outside it (module docstring)."""
    if draws < 1:
        raise PatchingError(f"draws must be >= 1, got {draws}.")
    pool = pairs.clean + pairs.corrupt
    n = len(pairs)
    orig = torch.zeros((), dtype=torch.float64)
    for idx in batches(pairs, batch_size):
        logits, _ = last_logits(lm, [pairs.clean[i] for i in idx])
        orig += metric.score(logits, idx).sum().cpu()
    original = float(orig) / n
    total = torch.zeros(len(circuits) + 1, dtype=torch.float64)
    for d in range(draws):
        partners = resample_pool_partners([len(s) for s in pool], n, seed + d)
        scrub_pairs = Pairs(pairs.clean, [pool[j] for j in partners], pairs.texts)
        empty = torch.zeros_like(graph.mask)
        total += circuit_metrics(lm, scrub_pairs, metric, graph, [*circuits, empty], batch_size=batch_size)
    vals = (total / draws).tolist()
    base = vals[-1]
    return ScrubResult(
        [faithfulness(v, original, base) for v in vals[:-1]], vals[:-1], original, base, draws, seed
    )
