"""Forward passes with many patches at once: one batch row per (patch, prompt).

:func:`run_rows` runs a left-padded batch of token sequences under a list of :class:`SiteWrites`
(every write names its batch row, unpadded token index, optional head and value) through the
public :func:`~safetyscope.activations.edit` primitive, and returns the last-token logits. A
sweep turns each of its cells into rows of one expanded batch, so a chunk of the sweep costs one
forward pass however many sites it patches.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from safetyscope.activations.hooks import edit, record
from safetyscope.activations.sites import Site
from safetyscope.batching import cache_kwarg, output_cache, pad_left
from safetyscope.model.loading import LoadedModel


@dataclass
class SiteWrites:
    """Writes at one site: ``h[row, tok(, head)] = value`` (or ``+= value`` when ``add``).

    ``toks`` index the unpadded sequence of each row; ``heads`` (for ``attn_z``) pick a
    ``d_head`` slice, else ``None`` (the whole vector).
    """

    site: Site
    rows: Tensor
    toks: Tensor
    values: Tensor
    heads: Tensor | None = None
    add: bool = False


class _Skip(nn.Module):
    """Stands in for a decoder block whose output is overwritten anyway: returns its input."""

    def forward(self, hidden_states: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return hidden_states


@contextmanager
def skip_blocks(lm: LoadedModel, below: int) -> Iterator[None]:
    """Replace blocks ``0 .. below-1`` by pass-throughs inside the block (always restored).

    Sound only when the input of block ``below`` is then overwritten at every position (the
    sweep writes the target run's recorded ``resid_pre`` there), so the skipped blocks' work
    would be thrown away.
    """
    layers = lm.arch.layers
    saved = [layers[i] for i in range(below)]
    try:
        for i in range(below):
            layers[i] = _Skip()
        yield
    finally:
        for i, block in enumerate(saved):
            layers[i] = block


def _keeps_last(model: Any) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def apply_writes(h: Tensor, writes: Sequence[SiteWrites], lengths: Tensor, d_head: int | None) -> Tensor:
    """``h`` (``[batch, pos, width]``, left-padded rows of ``lengths``) with ``writes`` applied (a copy)."""
    h = h.clone(memory_format=torch.contiguous_format)
    width = h.shape[1]
    for w in writes:
        rows = w.rows.to(h.device)
        cols = (width - lengths.to(h.device)[rows]) + w.toks.to(h.device)
        vals = w.values.to(device=h.device, dtype=h.dtype)
        if w.heads is not None:
            assert d_head is not None
            view = h.view(h.shape[0], width, -1, d_head)
            heads = w.heads.to(h.device)
            view[rows, cols, heads] = view[rows, cols, heads] + vals if w.add else vals
        else:
            h[rows, cols] = h[rows, cols] + vals if w.add else vals
    return h


@torch.inference_mode()
def run_rows(lm: LoadedModel, seqs: Sequence[Sequence[int]], writes: Sequence[SiteWrites] = (),
             d_head: int | None = None, record_sites: Sequence[Site] = (), skip_below: int = 0,
             prefix: tuple[Any, int] | None = None) -> tuple[Float[Tensor, "rows vocab"], dict[Site, Tensor]]:
    """Last-token logits of ``seqs`` (left-padded) under ``writes``, and the recorded sites.

    ``skip_below`` > 0 replaces the first blocks by pass-throughs (:func:`skip_blocks`); the
    caller must then overwrite every position's ``resid_pre`` of block ``skip_below``.
    ``prefix = (kv_cache, p)``: ``seqs`` are equal-length suffixes starting at token ``p`` whose
    first ``p`` tokens are already in the (per-row) cache; write ``toks`` count from ``p``.

    Recorded activations (after the writes) come back unpadded-aligned: ``[rows, T_max, width]``
    with token ``j`` of row ``r`` at ``[r, j]`` (zeros past each row's length).
    """
    if prefix is None:
        inputs = pad_left(seqs, int(lm.tokenizer.pad_token_id or 0), lm.device)
    else:
        cache, start = prefix
        ids = torch.tensor([list(x) for x in seqs], device=lm.device)
        pos = torch.arange(start, start + ids.shape[1], device=lm.device).expand(ids.shape[0], -1)
        inputs = {"input_ids": ids, "position_ids": pos,
                  "attention_mask": torch.ones(ids.shape[0], start + ids.shape[1], dtype=torch.long, device=lm.device),
                  cache_kwarg(lm.model): cache}
    lengths = torch.tensor([len(s) for s in seqs])
    by_site: dict[Site, list[SiteWrites]] = {}
    for w in writes:
        by_site.setdefault(w.site, []).append(w)
    kwargs: dict[str, Any] = dict(inputs, use_cache=prefix is not None)
    if _keeps_last(lm.model):
        kwargs["logits_to_keep"] = 1
    seen: dict[Site, Tensor] = {}

    def capture(site: Site, h: Tensor) -> None:
        seen[site] = h.detach().float().cpu()

    editing = edit(lm.arch, list(by_site), lambda s, h: apply_writes(h, by_site[s], lengths, d_head)) if by_site \
        else nullcontext()
    reading = record(lm.arch, list(record_sites), capture, stop_early=False) if record_sites else nullcontext()
    skipping = skip_blocks(lm, skip_below) if skip_below else nullcontext()
    with skipping, editing, reading:
        logits = lm.model(**kwargs).logits[:, -1, :].float()
    recorded = {}
    t_max = int(lengths.max())
    for site, h in seen.items():
        out = h.new_zeros(h.shape[0], t_max, h.shape[-1])
        for r, n in enumerate(lengths.tolist()):
            out[r, :n] = h[r, h.shape[1] - n:]
        recorded[site] = out
    return logits, recorded



@torch.inference_mode()
def generate_rows(lm: LoadedModel, seqs: Sequence[Sequence[int]], writes: Sequence[SiteWrites] = (),
                  max_new_tokens: int = 8, d_head: int | None = None) -> list[list[int]]:
    """Greedy, KV-cached continuations of ``seqs`` with ``writes`` applied on the prompt pass.

    Each row may carry its own patches (at its own sites), so many patched generations share
    one batch; generated tokens see the patched prompt through the KV cache.
    """
    inputs = pad_left(seqs, int(lm.tokenizer.pad_token_id or 0), lm.device)
    lengths = torch.tensor([len(s) for s in seqs])
    width = inputs["input_ids"].shape[1]
    by_site: dict[Site, list[SiteWrites]] = {}
    for w in writes:
        by_site.setdefault(w.site, []).append(w)

    def fn(site: Site, h: Tensor) -> Tensor:
        return apply_writes(h, by_site[site], lengths, d_head) if h.shape[1] == width else h

    out_ids: list[Tensor] = []
    with edit(lm.arch, list(by_site), fn) if by_site else nullcontext():
        mask, pos = inputs["attention_mask"], inputs["position_ids"][:, -1:]
        out = lm.model(**inputs, use_cache=True)
        for step in range(max_new_tokens):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            out_ids.append(nxt)
            if step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
            pos = pos + 1
            out = lm.model(input_ids=nxt, attention_mask=mask, position_ids=pos, use_cache=True,
                           **{cache_kwarg(lm.model): output_cache(out)})
    return torch.cat(out_ids, 1).cpu().tolist() if out_ids else [[] for _ in seqs]
