"""Collect residual-stream activations: exact, fast, memory-bounded, resumable.

``collect(lm, prompts, sites, positions, reduce)`` renders prompts with the chat template,
sorts them by length into left-padded batches (the package's one runner,
:func:`safetyscope.batching.iter_batches`), runs forward passes under
``torch.inference_mode`` with hooks only at the requested sites, stops each pass after the
deepest site, and either keeps the selected rows or streams float64 moments. Batches shrink
automatically on out-of-memory; non-finite activations are reported with the prompt that
produced them; progress is checkpointed to a disk cache so an interrupted run resumes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from safetyscope import __version__
from safetyscope.activations.cache import Checkpoint, cache_key
from safetyscope.activations.distributed import combine, shard, world
from safetyscope.activations.hooks import record, run_until_stopped
from safetyscope.activations.result import REDUCES, ActivationResult
from safetyscope.activations.sites import Positions, Site
from safetyscope.activations.stats import RunningMoments
from safetyscope.batching import iter_batches, pad_left
from safetyscope.data.prompts import PromptSet
from safetyscope.errors import PromptError, SafetyscopeError
from safetyscope.model.chat import EncodedPrompt
from safetyscope.model.loading import LoadedModel
from safetyscope.model.memory import token_budget


class NonFiniteActivationError(SafetyscopeError):
    """A NaN or inf appeared in a collected activation."""


@dataclass(frozen=True)
class _Item:
    index: int  # position in the input prompt list
    ids: list[int]
    positions: list[int]


class _Sink:
    """Receives selected rows per site and either keeps them or streams moments."""

    def __init__(self, sites: Sequence[Site], d: int, reduce: str, store_dtype: torch.dtype) -> None:
        self.reduce, self.store_dtype = reduce, store_dtype
        self.rows: dict[str, list[torch.Tensor]] = {s.key: [] for s in sites}
        self.index: list[torch.Tensor] = []
        self.position: list[torch.Tensor] = []
        self.moments = {s.key: RunningMoments(d, with_cov=reduce == "cov") for s in sites}

    def add(self, key: str, rows: torch.Tensor) -> None:
        if self.reduce == "none":
            self.rows[key].append(rows.to("cpu", self.store_dtype))
        else:
            self.moments[key].update(rows)

    def state(self) -> dict[str, torch.Tensor]:
        if self.reduce != "none":
            return {k: v for key, m in self.moments.items() for k, v in m.state(key).items()}
        out = {f"rows.{k}": torch.cat(v) for k, v in self.rows.items() if v}
        if self.index:
            out["prompt_index"], out["token_position"] = torch.cat(self.index), torch.cat(self.position)
        return out

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        if self.reduce != "none":
            self.moments = {k: RunningMoments.from_state(state, k) for k in self.moments}
            return
        for key in self.rows:
            if f"rows.{key}" in state:
                self.rows[key] = [state[f"rows.{key}"]]
        if "prompt_index" in state:
            self.index, self.position = [state["prompt_index"]], [state["token_position"]]


def _encode(lm: LoadedModel, prompts: PromptSet, positions: Positions) -> list[_Item]:
    config = lm.model.config
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    items = []
    for i, prompt in enumerate(prompts.prompts):
        enc: EncodedPrompt = lm.chat.encode(prompt)
        if limit is not None and len(enc) > limit:
            raise PromptError(
                f"Prompt #{i} is {len(enc)} tokens long; the model accepts at most {limit}: {prompt[:80]!r}..."
            )
        items.append(_Item(i, enc.input_ids, positions.select(enc)))
    return items


def _run_batch(lm: LoadedModel, batch: Sequence[_Item], sites: Sequence[Site], sink: _Sink,
               prompts: PromptSet, stop_early: bool = True) -> None:
    captured: dict[str, torch.Tensor] = {}
    inputs = pad_left([it.ids for it in batch], lm.tokenizer.pad_token_id, lm.device)
    with record(lm.arch, sites, lambda site, t: captured.__setitem__(site.key, t), stop_early=stop_early):
        run_until_stopped(lm.model, **inputs, use_cache=False)
    width = inputs["input_ids"].shape[1]
    rows_idx = torch.tensor([r for r, it in enumerate(batch) for _ in it.positions], device=lm.device)
    cols_idx = torch.tensor([width - len(it.ids) + p for it in batch for p in it.positions], device=lm.device)
    for key, acts in captured.items():
        picked = acts[rows_idx, cols_idx]
        finite = torch.isfinite(picked).all(-1)
        if not finite.all():
            item = batch[int(rows_idx[~finite][0])]
            raise NonFiniteActivationError(
                f"Non-finite activation at {key} for prompt #{item.index}: {prompts.prompts[item.index]!r}. "
                "Try float32 (dtype='float32') or check the model weights."
            )
        sink.add(key, picked)
    if sink.reduce == "none":
        for item in batch:
            sink.index.append(torch.full((len(item.positions),), item.index, dtype=torch.long))
            sink.position.append(torch.tensor(item.positions, dtype=torch.long))


def collect(
    lm: LoadedModel,
    prompts: PromptSet | Sequence[str],
    sites: Sequence[Site] | Site,
    positions: Positions | str = "last",
    reduce: str = "mean",
    *,
    pair_with: PromptSet | Sequence[str] | None = None,
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    store_dtype: torch.dtype = torch.float32,
    cache: bool | Path = False,
    checkpoint_seconds: float = 30.0,
    progress: bool = True,
    distributed: bool | None = None,
    stop_early: bool = True,
) -> ActivationResult:
    """Collect activations at ``sites`` and ``positions`` for ``prompts``.

    Args:
        lm: a model from :func:`safetyscope.load_model`.
        prompts: instructions (rendered with the model's chat template).
        sites: one or more :class:`Site`.
        positions: a :class:`Positions` or its string form (``last``, ``eoi``, ``eoi:-1``,
            ``all``, ``substring:|prod|``).
        reduce: ``none`` (keep rows), ``mean`` (streaming float64 mean), ``cov`` (mean +
            covariance), or ``paired_diff`` (rows of ``h(prompts[i]) - h(pair_with[i])``).
        pair_with: the second prompt set for ``paired_diff``, paired by index.
        batch_size: upper bound on prompts per batch (default: set by ``max_batch_tokens``).
        max_batch_tokens: padded-token budget per batch (default: what a quarter of the free
            memory holds for this model, :func:`safetyscope.model.memory.token_budget`, at most
            16k on CPU and 64k on GPU); halved automatically on out-of-memory.
        store_dtype: dtype of kept rows.
        cache: ``True`` for the default cache folder, a path for another, ``False`` for none.
            Cached runs return at once; interrupted runs resume from their last checkpoint.
        checkpoint_seconds: how often an uncached-yet run writes a resumable checkpoint.
        progress: show a progress bar.
        stop_early: end each forward pass after the deepest requested site (the default; only
            benchmarks and hook-sensitive callers want the full pass).
        distributed: shard prompts over ``torch.distributed`` ranks and combine the results
            (default: whenever a process group with more than one rank is initialised).
    """
    pset = prompts if isinstance(prompts, PromptSet) else PromptSet(tuple(prompts))
    site_list = [sites] if isinstance(sites, Site) else sorted(set(sites))
    if not site_list:
        raise SafetyscopeError("No sites requested.")
    pos = Positions.parse(positions) if isinstance(positions, str) else positions
    if reduce not in REDUCES:
        raise SafetyscopeError(f"Unknown reduce {reduce!r}; use one of {REDUCES}.")
    if reduce == "paired_diff":
        return _paired_diff(lm, pset, pair_with, site_list, pos, batch_size=batch_size,
                            max_batch_tokens=max_batch_tokens, store_dtype=store_dtype, cache=cache,
                            checkpoint_seconds=checkpoint_seconds, progress=progress)
    rank, size = world()
    if size > 1 and distributed is not False:
        local = collect(lm, shard(pset, rank, size), site_list, pos, reduce, batch_size=batch_size,
                        max_batch_tokens=max_batch_tokens, store_dtype=store_dtype, cache=cache,
                        checkpoint_seconds=checkpoint_seconds, progress=progress and rank == 0,
                        distributed=False, stop_early=stop_early)
        return combine(local, pset, rank, size)
    provenance = {
        "model": lm.spec, "model_fingerprint": lm.fingerprint(), "prompts": pset.name,
        "prompt_hash": pset.hash, "n_prompts": len(pset), "model_dtype": str(lm.dtype),
        "safetyscope_version": __version__,
    }
    checkpoint = None
    if cache:
        key = cache_key(provenance, [s.key for s in site_list], pos.key, reduce, str(store_dtype))
        checkpoint = Checkpoint(key, None if cache is True else Path(cache))
        done = checkpoint.load_result()
        if done is not None:
            return done
    items = sorted(_encode(lm, pset, pos), key=lambda it: -len(it.ids))
    sink = _Sink(site_list, lm.d_model, reduce, store_dtype)
    start = 0
    if checkpoint is not None:
        start, state = checkpoint.load_partial()
        if state:
            sink.restore(state)
    budget = max_batch_tokens or token_budget(lm.model.config, lm.dtype, lm.device, logits="none",
                                              max_tokens=65536 if lm.device.type == "cuda" else 16384)
    last_save = time.monotonic()

    def run(idx: list[int]) -> list[None]:
        _run_batch(lm, [items[i] for i in idx], site_list, sink, pset, stop_early)
        return [None] * len(idx)

    # items are already sorted longest first, so the runner's order is theirs
    batches = iter_batches([len(it.ids) for it in items], run, batch_size=batch_size, max_batch_tokens=budget,
                           progress=progress and len(items) >= 64, description="collecting", start=start)
    with torch.inference_mode():
        for idx, _ in batches:
            done = idx[-1] + 1
            if checkpoint is not None and time.monotonic() - last_save >= checkpoint_seconds and done < len(items):
                checkpoint.save_partial(done, sink.state())
                last_save = time.monotonic()
    result = _finish(sink, site_list, pos, reduce, len(pset), provenance)
    if checkpoint is not None:
        checkpoint.save_result(result)
    return result


def _finish(sink: _Sink, sites: list[Site], pos: Positions, reduce: str, n: int,
            provenance: dict[str, Any]) -> ActivationResult:
    if reduce != "none":
        return ActivationResult(sites, pos, reduce, n, moments=sink.moments, provenance=provenance)
    state = sink.state()
    order = torch.sort(state["prompt_index"], stable=True).indices  # back to input order
    return ActivationResult(
        sites, pos, reduce, n,
        rows={s.key: state[f"rows.{s.key}"][order] for s in sites},
        prompt_index=state["prompt_index"][order], token_position=state["token_position"][order],
        provenance=provenance,
    )


def _paired_diff(lm: LoadedModel, a: PromptSet, b: PromptSet | Sequence[str] | None, sites: list[Site],
                 pos: Positions, **kwargs: Any) -> ActivationResult:
    if b is None:
        raise SafetyscopeError("reduce='paired_diff' needs pair_with= (the second prompt set, paired by index).")
    bset = b if isinstance(b, PromptSet) else PromptSet(tuple(b), "pair_with")
    if len(bset) != len(a):
        raise SafetyscopeError(f"Paired sets differ in size: {len(a)} vs {len(bset)}.")
    ra = collect(lm, a, sites, pos, "none", **kwargs)
    rb = collect(lm, bset, sites, pos, "none", **kwargs)
    assert ra.prompt_index is not None and rb.prompt_index is not None
    if not torch.equal(ra.prompt_index, rb.prompt_index):
        raise SafetyscopeError("Paired prompts select different numbers of tokens; use a single-token selector (last, eoi:-1).")
    rows = {k: ra.rows[k] - rb.rows[k] for k in ra.rows}
    prov = dict(ra.provenance, pair_with=bset.name, pair_with_hash=bset.hash)
    return ActivationResult(sites, pos, "paired_diff", len(a), rows=rows, prompt_index=ra.prompt_index,
                            token_position=ra.token_position, provenance=prov)
