"""Run the target model with its layer-M activations replaced: by mapped source activations, or
by their mean (the mean-ablation baseline).

* :func:`splice_scores`: teacher-forced, every prompt token. Per prompt: the LM KL
  ``KL(p(·|y) ‖ p(·|ŷ))`` (the post's language-modelling loss) for the mapped and the
  mean-ablated stream, and the next-token NLL with true, mapped and mean-ablated activations.
* :func:`splice_generate`: greedy generation in lock step. At every step the source reads the
  new token (KV-cached), its layer-L activation is mapped, and the target's layer-M activation of
  that token is replaced before the target predicts the next one; so the generated tokens see
  mapped activations too, not only the prompt.

The write is :func:`~safetyscope.activations.edit` at the target site and the read
:func:`~safetyscope.activations.record` at the source site; batches come from
:func:`~safetyscope.batching.iter_batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit, record, run_until_stopped
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.causal.patching_runner import cache_kwarg, output_cache
from safetyscope.model.loading import LoadedModel
from safetyscope.transfer.pairs import TransferError, vocab_map

MapFn = Callable[[Tensor], Tensor]
SPLICE_MODES = ("true", "mapped", "mean")


def _source(src: LoadedModel, site: Site, inputs: dict[str, Any]) -> Tensor:
    seen: dict[Site, Tensor] = {}
    with record(src.arch, [site], lambda s, h: seen.__setitem__(s, h.detach()), stop_early=True):
        run_until_stopped(src.model, **inputs, use_cache=False)
    return seen[site]


def _replacer(
    mode: str, map_fn: MapFn | None, mean: Tensor | None
) -> Callable[[Tensor, Tensor | None], Tensor]:
    if mode == "mapped":
        if map_fn is None:
            raise TransferError("mode 'mapped' needs a map.")
        return lambda h, hs: map_fn(hs.float()).to(h.device, h.dtype)  # type: ignore[union-attr]
    if mode == "mean":
        if mean is None:
            raise TransferError("mode 'mean' needs the mean activation of the target site.")
        return lambda h, hs: mean.to(h.device, h.dtype).expand_as(h).clone()
    raise TransferError(f"Unknown splice mode {mode!r}; use one of {SPLICE_MODES}.")


@torch.inference_mode()
def splice_scores(
    src: LoadedModel,
    tgt: LoadedModel,
    seqs: Sequence[Sequence[int]],
    map_fn: MapFn,
    mean: Tensor,
    src_site: Site,
    tgt_site: Site,
    *,
    max_batch_tokens: int = 8192,
) -> dict[str, list[float]]:
    """Per-prompt ``kl_mapped``, ``kl_mean``, ``nll_true``, ``nll_mapped``, ``nll_mean`` (teacher-forced)."""
    keys = ("kl_mapped", "kl_mean", "nll_true", "nll_mapped", "nll_mean")

    def run(idx: list[int]) -> list[dict[str, float]]:
        inputs = pad_left([seqs[i] for i in idx], pad_id(tgt.tokenizer), tgt.device)
        mask = inputs["attention_mask"].bool()
        hs = _source(src, src_site, dict(inputs)).to(tgt.device)
        logits = {"true": tgt.model(**inputs, use_cache=False).logits.double()}
        for mode in ("mapped", "mean"):
            fn = _replacer(mode, map_fn, mean)
            with edit(tgt.arch, [tgt_site], lambda _s, h, fn=fn: fn(h, hs)):
                logits[mode] = tgt.model(**inputs, use_cache=False).logits.double()
        lp = {k: torch.log_softmax(v, -1) for k, v in logits.items()}
        kl = {k: (lp["true"].exp() * (lp["true"] - lp[k])).sum(-1) for k in ("mapped", "mean")}
        ids = inputs["input_ids"]
        nxt = mask[:, :-1] & mask[:, 1:]
        nll = {k: -v[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1) for k, v in lp.items()}
        out = []
        for r in range(len(idx)):
            m, n = mask[r], nxt[r]
            out.append(
                {
                    "kl_mapped": float(kl["mapped"][r][m].mean()),
                    "kl_mean": float(kl["mean"][r][m].mean()),
                    **{f"nll_{k}": float(nll[k][r][n].mean()) if n.any() else float("nan") for k in nll},
                }
            )
        return out

    res: list[dict[str, float]] = [{}] * len(seqs)
    for idx, out in iter_batches([len(s) for s in seqs], run, max_batch_tokens=max_batch_tokens):
        for i, o in zip(idx, out, strict=True):
            res[i] = o
    return {k: [r[k] for r in res] for k in keys}


@torch.inference_mode()
def _generate_batch(
    src: LoadedModel,
    tgt: LoadedModel,
    seqs: list[Sequence[int]],
    mode: str,
    map_fn: MapFn | None,
    mean: Tensor | None,
    src_site: Site,
    tgt_site: Site,
    max_new_tokens: int,
    to_src: Tensor | None = None,
) -> list[list[int]]:
    inputs = pad_left(seqs, pad_id(tgt.tokenizer), tgt.device)
    need_src = mode == "mapped"
    fn = None if mode == "true" else _replacer(mode, map_fn, mean)
    cur: dict[str, Tensor | None] = {"src": None}

    def src_step(kw: dict[str, Any]) -> Any:
        with record(src.arch, [src_site], lambda s, h: cur.__setitem__("src", h.detach()), stop_early=False):
            return src.model(**kw)

    def tgt_step(kw: dict[str, Any]) -> Any:
        ctx = edit(tgt.arch, [tgt_site], lambda _s, h: fn(h, cur["src"])) if fn is not None else nullcontext()
        with ctx:
            return tgt.model(**kw)

    s_out = src_step(dict(inputs, use_cache=True)) if need_src else None
    t_out = tgt_step(dict(inputs, use_cache=True))
    mask, pos = inputs["attention_mask"], inputs["position_ids"][:, -1:]
    out_ids = []
    for step in range(max_new_tokens):
        nxt = t_out.logits[:, -1].argmax(-1, keepdim=True)
        out_ids.append(nxt)
        if step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        pos = pos + 1
        kw = {"input_ids": nxt, "attention_mask": mask, "position_ids": pos, "use_cache": True}
        if need_src:  # the source reads the target's token (through the vocabulary map when they differ)
            s_kw = kw if to_src is None else {**kw, "input_ids": to_src.to(nxt.device)[nxt]}
            s_out = src_step({**s_kw, cache_kwarg(src.model): output_cache(s_out)})
        t_out = tgt_step({**kw, cache_kwarg(tgt.model): output_cache(t_out)})
    ids = torch.cat(out_ids, 1).cpu().tolist() if out_ids else [[] for _ in seqs]
    eos = tgt.tokenizer.eos_token_id
    return [row[: row.index(eos)] if eos is not None and eos in row else row for row in ids]


def splice_generate(
    src: LoadedModel,
    tgt: LoadedModel,
    seqs: Sequence[Sequence[int]],
    mode: str,
    *,
    map_fn: MapFn | None = None,
    mean: Tensor | None = None,
    src_site: Site | None = None,
    tgt_site: Site | None = None,
    max_new_tokens: int = 16,
    max_batch_tokens: int = 8192,
) -> list[list[int]]:
    """Greedy completions (token ids, cut at EOS) of the target with layer-M activations
    ``true`` (untouched), ``mapped`` (from the source through ``map_fn``, every step) or ``mean``."""
    if mode not in SPLICE_MODES:
        raise TransferError(f"Unknown splice mode {mode!r}; use one of {SPLICE_MODES}.")
    res: list[list[int]] = [[] for _ in seqs]
    s_site, t_site = src_site or Site(0), tgt_site or Site(0)
    to_src = vocab_map(src, tgt) if mode == "mapped" else None

    def run(idx: list[int]) -> list[list[int]]:
        return _generate_batch(
            src, tgt, [seqs[i] for i in idx], mode, map_fn, mean, s_site, t_site, max_new_tokens, to_src
        )

    budget = max(1, max_batch_tokens)
    for idx, out in iter_batches([len(s) + max_new_tokens for s in seqs], run, max_batch_tokens=budget):
        for i, o in zip(idx, out, strict=True):
            res[i] = o
    return res
