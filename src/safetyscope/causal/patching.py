"""Activation-patching sweeps (causal tracing) over components, layers, positions and heads.

Two runs of the same length: *clean* (shows the behaviour) and *corrupted* (does not). For every
cell ``(component, layer, position[, head])`` of the sweep, the activation there is replaced by
the other run's (``denoise``: clean into corrupted, a sufficiency test; ``noise``: corrupted
into clean, a necessity test) and a metric is read from the next-token logits at the last
position. Every cell becomes one row of an expanded batch (cells × prompt pairs), chunked by a
token budget, so a sweep costs ``cells × pairs × tokens / budget`` forward passes instead of one
pass per cell. ``batched=False`` runs the naive loop (one forward per cell, all pairs in it)
through the same code, for checks and benchmarks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from safetyscope.activations.sites import Positions, Site
from safetyscope.batching import is_oom
from safetyscope.causal.corrupt import Corruption, EmbeddingWrites, embedding_writes
from safetyscope.causal.patch_spec import (
    MODES,
    PatchingError,
    PatchTarget,
    head_layout,
    in_features,
    parse_components,
    parse_heads,
    sweep_targets,
)
from safetyscope.causal.patching_metrics import PatchMetric, make_metric, normalised_recovery
from safetyscope.causal.patching_result import PatchingResult, PatchScore
from safetyscope.causal.patching_runner import SiteWrites, run_rows
from safetyscope.errors import PromptError
from safetyscope.model.chat import EncodedPrompt
from safetyscope.model.loading import LoadedModel

EMBED_SITE = Site(0, "resid_pre")


@dataclass
class _Prepared:
    clean: list[EncodedPrompt]
    target_ids: list[list[int]]
    slots: list[list[int]]
    targets: list[PatchTarget]
    d_head: int | None
    source: dict[Site, Tensor]
    corrupt_writes: EmbeddingWrites | None
    clean_logits: Tensor
    corrupted_logits: Tensor
    sigma: float | None
    base: dict[Site, Tensor]


def encode_texts(lm: LoadedModel, texts: Sequence[str], chat: bool = True) -> list[EncodedPrompt]:
    """Chat-format and tokenize (``chat=True``) or tokenize the raw text with the tokenizer's specials."""
    if isinstance(texts, str) or not texts:
        raise PromptError("Give a non-empty list of prompts.")
    if chat:
        return [lm.chat.encode(t) for t in texts]
    out = []
    for t in texts:
        enc = lm.tokenizer(t, return_offsets_mapping=True)
        out.append(EncodedPrompt(t, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], (0, len(t))))
    return out


def _select(sel: Positions, enc: EncodedPrompt, other: EncodedPrompt | None) -> list[int]:
    try:
        return sel.select(enc)
    except PromptError:
        if other is None or sel.kind != "substring":
            raise
        return sel.select(other)  # e.g. the trigger appears only in the corrupted prompt


def _check_pairs(clean: list[EncodedPrompt], corrupt: list[EncodedPrompt]) -> None:
    if len(clean) != len(corrupt):
        raise PatchingError(f"{len(clean)} clean prompts but {len(corrupt)} corrupted ones; give one corrupted "
                            "prompt per clean prompt, in the same order.")
    for i, (a, b) in enumerate(zip(clean, corrupt, strict=True)):
        if len(a) != len(b):
            raise PatchingError(f"Pair {i}: the clean prompt has {len(a)} tokens but the corrupted one has "
                                f"{len(b)}; patching needs equal-length pairs (change words that tokenize alike, "
                                f"e.g. one token for one token). Clean: {a.text!r}; corrupted: {b.text!r}.")


def _slots(sel: Positions, clean: list[EncodedPrompt], corrupt: list[EncodedPrompt] | None) -> list[list[int]]:
    slots = [_select(sel, c, corrupt[i] if corrupt else None) for i, c in enumerate(clean)]
    counts = {len(s) for s in slots}
    if len(counts) != 1:
        raise PatchingError(f"Positions {sel.key!r} select {sorted(counts)} tokens in different prompts; a sweep "
                            "needs the same number in each (use equal-length prompts, or positions eoi or last).")
    return slots


def _record_base(lm: LoadedModel, seqs: list[list[int]], writes: EmbeddingWrites | None, sites: Sequence[Site],
                 budget: int) -> tuple[Tensor, dict[Site, Tensor]]:
    """Last-token logits and recorded sites of ``seqs`` (rows = prompts), chunked by ``budget``."""
    t_max = max(len(s) for s in seqs)
    per = max(1, budget // t_max)
    logits, rec = [], {}
    for a in range(0, len(seqs), per):
        rows = list(range(a, min(a + per, len(seqs))))
        w = [_embedding_site_writes(writes, rows)] if writes is not None else []
        lg, got = run_rows(lm, [seqs[i] for i in rows], w, record_sites=sites)
        logits.append(lg.cpu())
        for site, h in got.items():
            rec.setdefault(site, []).append(torch.nn.functional.pad(h, (0, 0, 0, t_max - h.shape[1])))
    return torch.cat(logits), {s: torch.cat(v) for s, v in rec.items()}


def _embedding_site_writes(ew: EmbeddingWrites, prompts: Sequence[int]) -> SiteWrites:
    rows = torch.cat([torch.full((len(ew.toks[p]),), r, dtype=torch.long) for r, p in enumerate(prompts)])
    toks = torch.cat([torch.tensor(ew.toks[p], dtype=torch.long) for p in prompts])
    vals = torch.cat([ew.values[p] for p in prompts])
    return SiteWrites(EMBED_SITE, rows, toks, vals, add=ew.add)


def prepare(lm: LoadedModel, clean: Sequence[str], corrupt: Sequence[str] | None, *, components: str | Sequence[str],
            layers: Sequence[int] | None, positions: str | Positions, heads: str | Sequence[int] | None,
            metric: PatchMetric, mode: str, corruption: Corruption, joint: bool, token_budget: int,
            chat: bool) -> _Prepared:
    """Validate the inputs and run the clean and corrupted baselines, recording the patch sources."""
    if mode not in MODES:
        raise PatchingError(f"Unknown mode {mode!r}; use one of {list(MODES)}.")
    if token_budget < 1:
        raise PatchingError(f"token_budget must be >= 1, got {token_budget}.")
    comps = parse_components(components)
    clean_enc = encode_texts(lm, clean, chat)
    corrupt_enc = None
    if corruption.kind == "pairs":
        if corrupt is None:
            raise PatchingError("Corruption 'pairs' needs corrupted prompts (--corrupt FILE), one per clean prompt.")
        corrupt_enc = encode_texts(lm, corrupt, chat)
        _check_pairs(clean_enc, corrupt_enc)
    elif corrupt is not None:
        raise PatchingError(f"Corruption {corruption.kind!r} corrupts the clean prompts themselves; drop the "
                            "corrupted prompts, or use corruption 'pairs'.")
    sel = positions if isinstance(positions, Positions) else Positions.parse(positions)
    slots = _slots(sel, clean_enc, corrupt_enc)
    d_head, head_list = None, []
    if "heads" in comps:
        n_heads, d_head = head_layout(lm.model, in_features(lm.arch.attn_out(0), lm.arch.map.writer_weight_layout))
        head_list = parse_heads(heads, n_heads)
    targets = sweep_targets(comps, list(range(lm.n_layers)) if layers is None else list(layers), lm.n_layers,
                            len(slots[0]), head_list, joint)
    sites = sorted({t.site for t in targets})
    clean_ids = [e.input_ids for e in clean_enc]
    ew = None
    need0 = corruption.kind != "pairs"
    starts = {Site(t.layer, "resid_pre") for t in targets if t.layer > 0}  # the target run's block inputs
    rec_clean = set(sites) if mode == "denoise" else set(starts)
    rec_clean |= {EMBED_SITE} if need0 else set()
    clean_logits, clean_rec = _record_base(lm, clean_ids, None, sorted(rec_clean), token_budget)
    if corrupt_enc is not None:
        corrupt_ids = [e.input_ids for e in corrupt_enc]
    else:
        csel = Positions.parse(corruption.positions)
        toks = [csel.select(e) for e in clean_enc]
        resid0 = [clean_rec[EMBED_SITE][i, : len(e)] for i, e in enumerate(clean_enc)]
        ew = embedding_writes(corruption, resid0, toks)
        corrupt_ids = clean_ids
    rec_corr = set(sites) if mode == "noise" else set(starts)
    corr_logits, corr_rec = _record_base(lm, corrupt_ids, ew, sorted(rec_corr), token_budget)
    source, target = (clean_rec, corr_rec) if mode == "denoise" else (corr_rec, clean_rec)
    target_ids = corrupt_ids if mode == "denoise" else clean_ids
    return _Prepared(clean_enc, target_ids, slots, targets, d_head, {s: source[s] for s in sites},
                     ew if mode == "denoise" else None, clean_logits, corr_logits, ew.sigma if ew else None,
                     {s: target[s] for s in starts})


def _chunk_writes(p: _Prepared, rows: Sequence[int], n: int, start: int = 0) -> list[SiteWrites]:
    """Writes for global rows ``rows`` (row = target * n + prompt).

    With ``start`` > 0 (blocks below ``start`` skipped) every token's input of block ``start`` is
    first set to the target run's recorded value, then the patches are written; the corruption
    writes at the embedding are then already inside those recorded values.
    """
    prompts = [r % n for r in rows]
    writes = []
    if start > 0:
        site = Site(start, "resid_pre")
        lens = [len(p.target_ids[i]) for i in prompts]
        writes.append(SiteWrites(
            site, torch.cat([torch.full((k,), r, dtype=torch.long) for r, k in enumerate(lens)]),
            torch.cat([torch.arange(k) for k in lens]),
            torch.cat([p.base[site][i, :k] for i, k in zip(prompts, lens, strict=True)])))
    elif p.corrupt_writes is not None:
        writes.append(_embedding_site_writes(p.corrupt_writes, prompts))
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
        ts.extend(toks)
        hs.extend([t.head if t.head is not None else -1] * len(toks))
        vs.append(vals)
    for site, (rs, ts, hs, vs) in parts.items():
        heads = torch.tensor(hs, dtype=torch.long) if site.point == "attn_z" else None
        writes.append(SiteWrites(site, torch.tensor(rs, dtype=torch.long), torch.tensor(ts, dtype=torch.long),
                                 torch.cat(vs), heads))
    return writes


def _groups(p: _Prepared, n: int, batched: bool) -> list[tuple[int, list[int]]]:
    """``(start_block, rows)`` groups: one per target when naive, one per layer when batched."""
    if not batched:
        return [(0, list(range(t * n, (t + 1) * n))) for t in range(len(p.targets))]
    by_layer: dict[int, list[int]] = {}
    for t, target in enumerate(p.targets):
        by_layer.setdefault(target.layer, []).extend(range(t * n, (t + 1) * n))
    return sorted(by_layer.items())


def run_patches(lm: LoadedModel, p: _Prepared, metric: PatchMetric, token_budget: int, batched: bool = True,
                progress: Callable[[int, int], None] | None = None) -> tuple[Tensor, int]:
    """Per-row metric of every (target, prompt) row and the number of forward passes used.

    Batched, the rows of all cells at one layer share forward passes (chunked by the token
    budget) that skip the blocks below that layer; naive, each cell gets one full forward.
    """
    n = len(p.target_ids)
    total = len(p.targets) * n
    t_max = max(len(s) for s in p.target_ids)
    out = torch.empty(total, dtype=torch.float64)
    passes, done = 0, 0
    for start, rows in _groups(p, n, batched):
        per = max(1, token_budget // t_max) if batched else len(rows)
        a = 0
        while a < len(rows):
            chunk = rows[a:a + per]
            try:
                logits, _ = run_rows(lm, [p.target_ids[r % n] for r in chunk], _chunk_writes(p, chunk, n, start),
                                     p.d_head, skip_below=start)
            except Exception as exc:  # OOM arrives as several exception types
                if not is_oom(exc) or per == 1:
                    raise
                per = max(1, per // 2)
                continue
            idx = torch.tensor(chunk)
            out[idx] = metric.score(logits, p.clean_logits[idx % n]).cpu()
            passes += 1
            a += len(chunk)
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
        corrupt: one equal-length counterfactual per clean prompt (corruption ``pairs`` only).
        components: subset of ``resid_pre,resid_post,attn_out,mlp_out,heads``.
        layers: blocks to patch (default all).
        positions: ``all``, ``eoi``, ``eoi:-1``, ``last`` or ``substring:TEXT`` (one slot per selected token).
        heads: heads for the ``heads`` component (default all), e.g. ``"0,3"``.
        metric: ``logit_diff`` (needs ``answer``/``wrong``), ``kl`` or ``refusal``; default
            ``logit_diff`` when ``answer`` is given, else ``kl``.
        mode: ``denoise`` (clean into corrupted) or ``noise`` (corrupted into clean).
        corruption: ``pairs``, ``noise``, ``mean``, ``zero`` or a :class:`Corruption`.
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
    return PatchingResult(scores, clean_m, corr_m, met.name, mode, corr.kind, list(p.slots[0]),
                          [lm.tokenizer.decode([first.input_ids[j]]) for j in p.slots[0]], n, provenance)
