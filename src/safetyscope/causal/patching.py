"""Activation-patching sweeps (causal tracing) over components, layers, positions and heads.

Two runs of the same length: *clean* (shows the behaviour) and *corrupted* (does not). For every
cell ``(component, layer, position[, head])`` of the sweep, the activation there is replaced by
the other run's (``denoise``: clean into corrupted, a sufficiency test; ``noise``: corrupted
into clean, a necessity test) and a metric is read from the next-token logits at the last
position. Every cell becomes one row of an expanded batch (cells × prompt pairs), chunked by a
token budget, so a sweep needs a few forward passes instead of one per cell. Two exact savings
on top: rows patched at layer L skip the blocks below L (the target run's recorded ``resid_pre``
of L is written back at every token), and, when the targets have equal length, rows are binned
by their first patched token ``p`` and run only the suffix from ``p`` with the prefix's keys
and values from a KV cache (a patch cannot change earlier tokens). ``batched=False`` runs the
naive loop (one full forward per cell, all pairs in it) through the same code, for checks and
benchmarks.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Positions, Site
from safetyscope.batching import is_oom
from safetyscope.causal.corrupt import Corruption
from safetyscope.causal.patch_spec import (
    parse_components,
)
from safetyscope.causal.patching_metrics import PatchMetric, make_metric, normalised_recovery
from safetyscope.causal.patching_prepare import EMBED_SITE, Prepared, embedding_site_writes, prepare
from safetyscope.causal.patching_result import PatchingResult, PatchScore
from safetyscope.causal.patching_runner import SiteWrites, apply_writes, output_cache, run_rows
from safetyscope.causal.str_corrupt import str_corrupt
from safetyscope.model.loading import LoadedModel


def _chunk_writes(p: Prepared, rows: Sequence[int], n: int, start: int = 0, offset: int | None = None
                  ) -> list[SiteWrites]:
    """Writes for global rows ``rows`` (row = target * n + prompt).

    With ``start`` > 0 (blocks below ``start`` skipped) or an ``offset`` (a suffix run from token
    ``offset``, the prefix in the KV cache) every token's input of block ``start`` is first set to
    the target run's recorded value (which already holds any embedding corruption), then the
    patches are written; token indices count from ``offset``.
    """
    prompts = [r % n for r in rows]
    writes = []
    off = offset or 0
    if start > 0 or offset is not None:
        site = Site(start, "resid_pre")
        lens = [len(p.target_ids[i]) for i in prompts]
        writes.append(SiteWrites(
            site, torch.cat([torch.full((k - off,), r, dtype=torch.long) for r, k in enumerate(lens)]),
            torch.cat([torch.arange(k - off) for k in lens]),
            torch.cat([p.base[site][i, off:k] for i, k in zip(prompts, lens, strict=True)])))
    elif p.corrupt_writes is not None:
        writes.append(embedding_site_writes(p.corrupt_writes, prompts))
    parts: dict[Site, tuple[list[int], list[int], list[int], list[Tensor]]] = {}
    for local, r in enumerate(rows):
        t, i = p.targets[r // n], r % n
        toks = p.slots[i] if t.slot is None else [p.slots[i][t.slot]]
        vals = p.source[t.site][i, toks]
        if t.head is not None:
            assert p.d_head is not None
            vals = vals[:, t.head * p.d_head:(t.head + 1) * p.d_head]
        rs, ts, hs, vs = parts.setdefault(t.site, ([], [], [], []))
        rs.extend([local] * len(toks))
        ts.extend(x - off for x in toks)
        hs.extend([t.head if t.head is not None else -1] * len(toks))
        vs.append(vals)
    for site, (rs, ts, hs, vs) in parts.items():
        heads = torch.tensor(hs, dtype=torch.long) if site.point == "attn_z" else None
        writes.append(SiteWrites(site, torch.tensor(rs, dtype=torch.long), torch.tensor(ts, dtype=torch.long),
                                 torch.cat(vs), heads))
    return writes


def _first_tok(p: Prepared, r: int, n: int) -> int:
    t = p.targets[r // n]
    return min(p.slots[r % n]) if t.slot is None else p.slots[r % n][t.slot]


def _prefix_ok(lm: LoadedModel, p: Prepared) -> bool:
    """Prefix reuse needs equal-length targets (no padding) and no sliding window shorter than them."""
    lengths = {len(s) for s in p.target_ids}
    window = getattr(lm.model.config, "sliding_window", None)
    return len(lengths) == 1 and not (window and window < lengths.pop())


def _prefix_cache(lm: LoadedModel, p: Prepared, upto: int) -> Any:
    """KV cache of every target prompt's first ``upto`` tokens (embedding corruption included)."""
    ids = torch.tensor([s[:upto] for s in p.target_ids], device=lm.device)
    n = ids.shape[0]
    base = p.base[EMBED_SITE][:, :upto]
    w = SiteWrites(EMBED_SITE, torch.arange(n).repeat_interleave(upto), torch.arange(upto).repeat(n),
                   base.reshape(-1, base.shape[-1]))
    lengths = torch.full((n,), upto)
    with edit(lm.arch, [EMBED_SITE], lambda _s, h: apply_writes(h, [w], lengths, None)):
        return output_cache(lm.model(input_ids=ids, use_cache=True))


#: Fixed cost of one block's forward call, in FLOP-equivalents (Python, hooks, cache handling and
#: kernel launches). Tuned on SmolLM2 (1 CPU thread, 4 layers x 39 positions): 3e7 gave 15.2 s for the
#: batched sweep, 3e8 9.4 s, 3e9 9.0 s (52, 20 and 8 forward passes).
FORWARD_OVERHEAD_FLOPS = 3e8


def bin_width(d_model: int, n_pairs: int) -> int:
    """Width (in tokens) of the first-patched-token bins that share one prefix.

    Per layer, bins of width ``w`` cost about ``T / w`` forward calls (fixed cost ``O`` each) plus
    ``n · T · w / 2`` recomputed tokens (``c ≈ 24 · d_model²`` FLOPs per token and block); the
    sum is smallest at ``w = sqrt(2 O / (c n))``. Tiny models get wide bins (few calls), large
    ones narrow bins (little recomputation).
    """
    return max(1, round((2 * FORWARD_OVERHEAD_FLOPS / (24 * d_model**2 * max(1, n_pairs))) ** 0.5))


def _plan(p: Prepared, n: int, batched: bool, prefix: bool, budget: int, d_model: int
          ) -> list[tuple[int, int | None, list[int]]]:
    """``(start_block, prefix_len, rows)`` chunks.

    Naive: one chunk per cell. Batched: the rows of one layer share chunks of ``budget`` tokens
    that skip the blocks below it; with ``prefix`` the rows are sorted by their first patched
    token and binned, and each chunk runs only the suffix from the bin's first token (the prefix
    comes from a KV cache: a patch cannot change earlier tokens).
    """
    if not batched:
        return [(0, None, list(range(t * n, (t + 1) * n))) for t in range(len(p.targets))]
    t_max = max(len(s) for s in p.target_ids)
    by_layer: dict[int, list[int]] = {}
    for t, target in enumerate(p.targets):
        by_layer.setdefault(target.layer, []).extend(range(t * n, (t + 1) * n))
    plan: list[tuple[int, int | None, list[int]]] = []
    for layer, rows in sorted(by_layer.items()):
        if not prefix:
            per = max(1, budget // t_max)
            plan += [(layer, None, rows[a:a + per]) for a in range(0, len(rows), per)]
            continue
        rows = sorted(rows, key=lambda r: _first_tok(p, r, n))
        width = bin_width(d_model, n)
        a = 0
        while a < len(rows):
            p0 = _first_tok(p, rows[a], n)
            per = max(1, budget // (t_max - p0))
            b = a
            while b < len(rows) and b - a < per and _first_tok(p, rows[b], n) < p0 + width:
                b += 1
            plan.append((layer, p0 if p0 > 0 else None, rows[a:b]))
            a = b
    return plan


@torch.inference_mode()
def run_patches(lm: LoadedModel, p: Prepared, metric: PatchMetric, token_budget: int, batched: bool = True,
                progress: Callable[[int, int], None] | None = None) -> tuple[Tensor, int]:
    """Per-row metric of every (target, prompt) row and the number of forward passes used."""
    n = len(p.target_ids)
    total = len(p.targets) * n
    out = torch.empty(total, dtype=torch.float64)
    prefix = batched and _prefix_ok(lm, p)
    caches: dict[int, Any] = {}
    passes, done = 0, 0
    queue = _plan(p, n, batched, prefix, token_budget, lm.d_model)
    while queue:
        start, p0, chunk = queue.pop(0)
        try:
            if p0 is None:
                seqs: list[list[int]] = [p.target_ids[r % n] for r in chunk]
                pre = None
            else:
                if p0 not in caches:
                    caches[p0] = _prefix_cache(lm, p, p0)
                cache = copy.deepcopy(caches[p0])
                cache.batch_select_indices(torch.tensor([r % n for r in chunk], device=lm.device))
                seqs, pre = [p.target_ids[r % n][p0:] for r in chunk], (cache, p0)
            writes = _chunk_writes(p, chunk, n, start, p0 if p0 is not None else (0 if prefix else None))
            logits, _ = run_rows(lm, seqs, writes, p.d_head, skip_below=start, prefix=pre)
        except Exception as exc:  # OOM arrives as several exception types
            if not is_oom(exc) or len(chunk) == 1:
                raise
            half = len(chunk) // 2
            queue[:0] = [(start, p0, chunk[:half]), (start, p0, chunk[half:])]
            continue
        idx = torch.tensor(chunk)
        out[idx] = metric.score(logits, p.clean_logits[idx % n]).cpu()
        passes += 1
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return out, passes


def _hash(texts: Sequence[str] | None) -> str | None:
    return None if texts is None else hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:16]


def patching_sweep(lm: LoadedModel, clean: Sequence[str], corrupt: Sequence[str] | None = None, *,
                   components: str | Sequence[str] = "resid_pre", layers: Sequence[int] | None = None,
                   positions: str | Positions = "all", heads: str | Sequence[int] | None = None,
                   metric: str | PatchMetric | None = None, answer: str | None = None, wrong: str | None = None,
                   mode: str = "denoise", corruption: str | Corruption = "pairs", joint: bool = False,
                   token_budget: int = 8192, batched: bool = True, chat: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> PatchingResult:
    """Patch every (component, layer, position[, head]) cell and score the metric (mean over pairs).

    Args:
        lm: the model.
        clean: prompts that show the behaviour (chat-formatted unless ``chat=False``).
        corrupt: one equal-length counterfactual per clean prompt (corruption ``pairs``; with ``str``
            without a key, the pairs whose differing words are replaced).
        components: subset of ``resid_pre,resid_post,attn_out,mlp_out,heads``.
        layers: blocks to patch (default all).
        positions: ``all``, ``eoi``, ``eoi:-1``, ``last`` or ``substring:TEXT`` (one slot per selected token).
        heads: heads for the ``heads`` component (default all), e.g. ``"0,3"``.
        metric: ``logit_diff`` (needs ``answer``/``wrong``), ``kl`` or ``refusal``; default
            ``logit_diff`` when ``answer`` is given, else ``kl``.
        mode: ``denoise`` (clean into corrupted) or ``noise`` (corrupted into clean).
        corruption: ``pairs``, ``str``, ``gaussian`` (``noise``), ``zero``, ``mean``, ``resample`` or a
            :class:`Corruption` (see :mod:`safetyscope.causal.corrupt`).
        joint: patch all selected positions of a prompt at once (one cell per component x layer).
        token_budget: tokens per forward pass of the expanded batch.
        batched: ``False`` runs one forward per cell (the naive loop), for checks and benchmarks.
        chat: apply the chat template (``False``: tokenize the text as given).
        progress: called with ``(rows_done, rows_total)`` after each forward pass.

    Raises:
        PatchingError: unequal-length pairs, an unknown component, mode or metric, a head or
            layer out of range, positions that select different counts per prompt.
    """
    t0 = time.perf_counter()
    corr = corruption if isinstance(corruption, Corruption) else Corruption(corruption)
    met = metric if isinstance(metric, PatchMetric) else make_metric(metric, lm.tokenizer, answer, wrong)
    replaced = None
    if corr.kind == "str":
        corrupt, replaced = str_corrupt(lm, clean, corrupt, key=corr.key, words=corr.words, seed=corr.seed, chat=chat)
    p = prepare(lm, clean, corrupt, components=components, layers=layers, positions=positions, heads=heads,
                metric=met, mode=mode, corruption=corr, joint=joint, token_budget=token_budget, chat=chat)
    rows, passes = run_patches(lm, p, met, token_budget, batched, progress)
    n = len(p.target_ids)
    values = rows.view(len(p.targets), n).mean(1)
    clean_m = float(met.score(p.clean_logits, p.clean_logits).mean())
    corr_m = float(met.score(p.corrupted_logits, p.clean_logits).mean())
    first = p.clean[0]
    scores = [PatchScore(t.component, t.layer, None if t.slot is None else p.slots[0][t.slot], t.head, float(v),
                         normalised_recovery(float(v), clean_m, corr_m)) for t, v in zip(p.targets, values, strict=True)]
    from safetyscope import __version__

    sel = positions if isinstance(positions, Positions) else Positions.parse(positions)
    provenance = {
        "model": lm.spec, "model_fingerprint": lm.fingerprint(), "clean_hash": _hash(clean),
        "corrupt_hash": _hash(corrupt), "mode": mode, "metric": met.to_dict(), "corruption": corr.to_dict(),
        "embedding_std": p.sigma, "seed": corr.seed, "components": parse_components(components),
        "positions_spec": sel.key, "joint": joint, "chat": chat, "token_budget": token_budget, "batched": batched,
        "forward_passes": passes, "rows": len(rows), "seconds": time.perf_counter() - t0,
        "safetyscope_version": __version__,
    }
    if replaced is not None:
        provenance["str_replacements"] = [{"key": r.key, "replacement": r.replacement} for r in replaced]
    return PatchingResult(scores, clean_m, corr_m, met.name, mode, corr.kind, list(p.slots[0]),
                          [lm.tokenizer.decode([first.input_ids[j]]) for j in p.slots[0]], n, provenance)
