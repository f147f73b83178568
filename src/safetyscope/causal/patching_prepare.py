"""Inputs and baselines of a patching sweep: encoding, pair and slot checks, the clean and
corrupted runs, and the activations the patches will copy (:func:`prepare`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from safetyscope.activations.sites import Positions, Site
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
from safetyscope.causal.patching_metrics import PatchMetric
from safetyscope.causal.patching_runner import SiteWrites, run_rows
from safetyscope.errors import PromptError
from safetyscope.model.chat import EncodedPrompt
from safetyscope.model.loading import LoadedModel

EMBED_SITE = Site(0, "resid_pre")


@dataclass
class Prepared:
    """A validated sweep: encodings, target token ids, slots, cells, recorded sources and baselines."""

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
        w = [embedding_site_writes(writes, rows)] if writes is not None else []
        lg, got = run_rows(lm, [seqs[i] for i in rows], w, record_sites=sites)
        logits.append(lg.cpu())
        for site, h in got.items():
            rec.setdefault(site, []).append(torch.nn.functional.pad(h, (0, 0, 0, t_max - h.shape[1])))
    return torch.cat(logits), {s: torch.cat(v) for s, v in rec.items()}


def embedding_site_writes(ew: EmbeddingWrites, prompts: Sequence[int]) -> SiteWrites:
    rows = torch.cat([torch.full((len(ew.toks[p]),), r, dtype=torch.long) for r, p in enumerate(prompts)])
    toks = torch.cat([torch.tensor(ew.toks[p], dtype=torch.long) for p in prompts])
    vals = torch.cat([ew.values[p] for p in prompts])
    return SiteWrites(EMBED_SITE, rows, toks, vals, add=ew.add)


def prepare(lm: LoadedModel, clean: Sequence[str], corrupt: Sequence[str] | None, *, components: str | Sequence[str],
            layers: Sequence[int] | None, positions: str | Positions, heads: str | Sequence[int] | None,
            metric: PatchMetric, mode: str, corruption: Corruption, joint: bool, token_budget: int,
            chat: bool) -> Prepared:
    """Validate the inputs and run the clean and corrupted baselines, recording the patch sources."""
    if mode not in MODES:
        raise PatchingError(f"Unknown mode {mode!r}; use one of {list(MODES)}.")
    if token_budget < 1:
        raise PatchingError(f"token_budget must be >= 1, got {token_budget}.")
    comps = parse_components(components)
    clean_enc = encode_texts(lm, clean, chat)
    corrupt_enc = None
    if corruption.kind in ("pairs", "str"):
        if corrupt is None:
            raise PatchingError(f"Corruption {corruption.kind!r} needs corrupted prompts (--corrupt FILE), one per clean prompt.")
        corrupt_enc = encode_texts(lm, corrupt, chat)
        _check_pairs(clean_enc, corrupt_enc)
    elif corrupt is not None and corruption.kind != "resample":
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
    need0 = corruption.kind not in ("pairs", "str")
    starts = {Site(t.layer, "resid_pre") for t in targets} | {EMBED_SITE}  # the target run's block inputs
    rec_clean = set(sites) if mode == "denoise" else set(starts)
    rec_clean |= {EMBED_SITE} if need0 else set()
    clean_logits, clean_rec = _record_base(lm, clean_ids, None, sorted(rec_clean), token_budget)
    if corrupt_enc is not None:
        corrupt_ids = [e.input_ids for e in corrupt_enc]
    else:
        csel = Positions.parse(corruption.positions)
        toks = [csel.select(e) for e in clean_enc]
        resid0 = [clean_rec[EMBED_SITE][i, : len(e)] for i, e in enumerate(clean_enc)]
        pool: list[Tensor] = []
        if corrupt is not None:  # resample: the counterfactual prompts join the inputs drawn from
            extra = encode_texts(lm, corrupt, chat)
            _, rec = _record_base(lm, [e.input_ids for e in extra], None, [EMBED_SITE], token_budget)
            pool = [rec[EMBED_SITE][i, : len(e)] for i, e in enumerate(extra)]
        ew = embedding_writes(corruption, resid0, toks, pool)
        corrupt_ids = clean_ids
    rec_corr = set(sites) if mode == "noise" else set(starts)
    corr_logits, corr_rec = _record_base(lm, corrupt_ids, ew, sorted(rec_corr), token_budget)
    source, target = (clean_rec, corr_rec) if mode == "denoise" else (corr_rec, clean_rec)
    target_ids = corrupt_ids if mode == "denoise" else clean_ids
    return Prepared(clean_enc, target_ids, slots, targets, d_head, {s: source[s] for s in sites},
                     ew if mode == "denoise" else None, clean_logits, corr_logits, ew.sigma if ew else None,
                     {s: target[s] for s in starts})
