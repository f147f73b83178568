"""Collect (MLP input, MLP output) row pairs of chosen layers over a token corpus, in one pass per batch.

Hooks on each layer's MLP block (:func:`~safetyscope.transcoders.model.mlp_module`) read its input
and output; the corpus goes through the package's one batched runner
(:func:`safetyscope.batching.iter_batches`), and the forward pass stops after the deepest MLP. The
rows come back as in-memory :class:`~safetyscope.sae.ActivationStore` pairs (with each row's
``(sequence, position)`` index, so :func:`safetyscope.sae.top_contexts` labels transcoder features).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.hooks import StopForward, run_until_stopped
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.corpus import TokenCorpus
from safetyscope.sae.stream import ActivationStore
from safetyscope.transcoders.model import mlp_module


@dataclass
class MLPRows:
    """Per layer: the MLP's input rows and its output rows (same order, same index)."""

    inputs: dict[int, ActivationStore]
    outputs: dict[int, ActivationStore]
    seconds: float

    @property
    def tokens(self) -> int:
        """Rows per layer."""
        return next(iter(self.inputs.values())).n_rows


def stream_mlp_rows(
    lm: LoadedModel,
    corpus: TokenCorpus,
    layers: Sequence[int],
    *,
    max_batch_tokens: int = 8192,
    progress: bool = False,
) -> MLPRows:
    """Rows of every layer in ``layers`` at the corpus' selected positions (see the module docstring)."""
    layers = sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= lm.n_layers:
        raise SafetyscopeError(f"Transcoder layers {layers} must be within 0..{lm.n_layers - 1}.")
    seqs = corpus.seqs
    got_in: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    got_out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    index: list[Tensor] = []
    t0 = time.perf_counter()

    def run(idx: list[int]) -> list[None]:
        batch = [seqs[i] for i in idx]
        inputs = pad_left([s.ids for s in batch], pad_id(lm.tokenizer), lm.device)
        width = inputs["input_ids"].shape[1]
        r = torch.tensor([j for j, s in enumerate(batch) for _ in s.positions], device=lm.device)
        c = torch.tensor([width - len(s.ids) + p for s in batch for p in s.positions], device=lm.device)
        handles = []

        def hook(layer: int):
            def fn(_m: torch.nn.Module, args: tuple, out: Tensor) -> None:
                got_in[layer].append(args[0][r, c].float().cpu())
                got_out[layer].append((out[0] if isinstance(out, tuple) else out)[r, c].float().cpu())
                if layer == layers[-1]:
                    raise StopForward

            return fn

        try:
            for layer in layers:
                handles.append(mlp_module(lm, layer).register_forward_hook(hook(layer)))
            run_until_stopped(lm.model, **inputs, use_cache=False)
        finally:
            for h in handles:
                h.remove()
        index.append(
            torch.tensor(
                [[i, p] for i, s in zip(idx, batch, strict=True) for p in s.positions], dtype=torch.long
            ).view(-1, 2)
        )
        return [None] * len(idx)

    with torch.inference_mode():
        for _ in iter_batches(
            [len(s.ids) for s in seqs],
            run,
            max_batch_tokens=max_batch_tokens,
            progress=progress,
            description="streaming MLP inputs and outputs",
        ):
            pass
    seconds = time.perf_counter() - t0
    prov = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "corpus": corpus.spec,
        "corpus_hash": corpus.hash,
        "n_tokens": corpus.n_tokens,
        "safetyscope_version": __version__,
    }

    def store(rows: list[Tensor], layer: int, what: str) -> ActivationStore:
        x = torch.cat(rows)
        return ActivationStore(
            Site(layer, "mlp_out"),
            x.shape[1],
            [x],
            [len(x)],
            {**prov, "rows": what},
            seconds,
            [torch.cat(index)],
        )

    return MLPRows(
        {la: store(got_in[la], la, "mlp_in") for la in layers},
        {la: store(got_out[la], la, "mlp_out") for la in layers},
        seconds,
    )
