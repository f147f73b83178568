"""Paired activations: a source and a target model read at the same token of the same prompt.

Both models must tokenize every prompt identically (a shared tokenizer); the pairing is then
exact, token for token. :func:`collect_pairs` runs :func:`~safetyscope.activations.collect`
(the package's batched, hook-only-where-needed reader) once per model with ``Positions("all")``
and ``reduce="none"``: padding never produces a row, so every row is a real token and the
masked losses of the post reduce to plain means over rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from safetyscope.activations.collect import collect
from safetyscope.activations.sites import Positions, Site
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel


class TransferError(SafetyscopeError):
    """Representation transfer cannot run as asked (tokenizers differ, layers out of range, bad map file)."""


def prompt_hash(prompts: Sequence[str]) -> str:
    """Short SHA-256 of a prompt list (provenance)."""
    return hashlib.sha256(json.dumps(list(prompts)).encode()).hexdigest()[:16]


def check_shared_tokenizer(src: LoadedModel, tgt: LoadedModel, prompts: Sequence[str]) -> list[list[int]]:
    """The chat-formatted token ids of ``prompts``; raise when the two models tokenize any prompt differently."""
    ids = []
    for i, p in enumerate(prompts):
        a, b = src.chat.encode(p).input_ids, tgt.chat.encode(p).input_ids
        if a != b:
            raise TransferError(
                f"The models tokenize prompt #{i} differently ({len(a)} vs {len(b)} tokens): {p[:60]!r}. "
                "Representation transfer pairs activations token by token and needs one shared tokenizer "
                "(e.g. two organisms, or two models of one family)."
            )
        ids.append(list(a))
    return ids


def vocab_map(src: LoadedModel, tgt: LoadedModel) -> Tensor | None:
    """Source token id of every target token id (by token string; the source's unknown token when it
    lacks one), or ``None`` when every target id means the same token in the source. Text generated
    by the target is fed to the source through this map (e.g. a v2 organism's words in a v1 one)."""
    ts = tgt.tokenizer.convert_ids_to_tokens(list(range(len(tgt.tokenizer))))
    ss = src.tokenizer.convert_ids_to_tokens(list(range(len(src.tokenizer))))
    if len(ts) <= len(ss) and ts == ss[: len(ts)]:
        return None
    index = {t: i for i, t in enumerate(ss)}
    unk = src.tokenizer.unk_token_id
    if unk is None:
        missing = [t for t in ts if t not in index][:5]
        raise TransferError(f"The target has tokens the source lacks ({missing}) and the source has no unknown "
                            "token to stand in; use two models with one tokenizer.")
    return torch.tensor([index.get(t, unk) for t in ts])


@dataclass
class PairedActivations:
    """Rows of source and target activations at the same tokens (row ``r``: prompt ``prompt_index[r]``,
    token ``token_position[r]``), for every collected source and target layer."""

    src: dict[int, Float[Tensor, "n d_src"]]
    tgt: dict[int, Float[Tensor, "n d_tgt"]]
    prompt_index: Int[Tensor, " n"]
    token_position: Int[Tensor, " n"]
    src_point: str = "resid_pre"
    tgt_point: str = "resid_pre"
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        """Number of paired token rows."""
        return int(self.prompt_index.shape[0])

    def xy(self, src_layer: int, tgt_layer: int) -> tuple[Tensor, Tensor]:
        """``(X, Y)``: source rows of ``src_layer`` and target rows of ``tgt_layer``."""
        if src_layer not in self.src:
            raise TransferError(f"Source layer {src_layer} was not collected (have {sorted(self.src)}).")
        if tgt_layer not in self.tgt:
            raise TransferError(f"Target layer {tgt_layer} was not collected (have {sorted(self.tgt)}).")
        return self.src[src_layer], self.tgt[tgt_layer]

    def split(self, heldout: float = 0.2, seed: int = 0) -> tuple[PairedActivations, PairedActivations]:
        """Train / held-out split **by prompt** (no prompt contributes tokens to both sides)."""
        if not 0 < heldout < 1:
            raise TransferError(f"heldout must be in (0, 1), got {heldout}.")
        prompts = torch.unique(self.prompt_index)
        if len(prompts) < 2:
            raise TransferError("Need at least 2 prompts to split into train and held-out.")
        g = torch.Generator().manual_seed(seed)
        perm = prompts[torch.randperm(len(prompts), generator=g)]
        n_held = min(len(prompts) - 1, max(1, round(heldout * len(prompts))))
        held = torch.isin(self.prompt_index, perm[:n_held])
        return self._subset(~held), self._subset(held)

    def _subset(self, mask: Tensor) -> PairedActivations:
        return PairedActivations(
            {k: v[mask] for k, v in self.src.items()},
            {k: v[mask] for k, v in self.tgt.items()},
            self.prompt_index[mask],
            self.token_position[mask],
            self.src_point,
            self.tgt_point,
            dict(self.provenance),
        )


def collect_pairs(
    src: LoadedModel,
    tgt: LoadedModel,
    prompts: Sequence[str],
    src_layers: Sequence[int],
    tgt_layers: Sequence[int],
    *,
    src_point: str = "resid_pre",
    tgt_point: str = "resid_pre",
    max_batch_tokens: int | None = None,
    progress: bool = False,
) -> PairedActivations:
    """Collect source activations at ``src_layers`` and target activations at ``tgt_layers`` on the
    same tokens of the same prompts (every non-padding token of every chat-formatted prompt).

    Raises:
        TransferError: the models tokenize a prompt differently, a layer is out of range, or no prompts.
    """
    prompts = list(prompts)
    if not prompts:
        raise TransferError("No prompts to collect paired activations on.")
    for lm, layers, who in ((src, src_layers, "source"), (tgt, tgt_layers, "target")):
        bad = [x for x in layers if not 0 <= x < lm.n_layers]
        if bad or not layers:
            raise TransferError(f"{who} layers {list(layers)} invalid for {lm.spec} ({lm.n_layers} layers).")
    ids = check_shared_tokenizer(src, tgt, prompts)
    t0 = time.perf_counter()
    rs = collect(
        src,
        prompts,
        [Site(x, src_point) for x in src_layers],
        Positions("all"),
        "none",  # type: ignore[arg-type]
        max_batch_tokens=max_batch_tokens,
        progress=progress,
    )
    rt = collect(
        tgt,
        prompts,
        [Site(x, tgt_point) for x in tgt_layers],
        Positions("all"),
        "none",  # type: ignore[arg-type]
        max_batch_tokens=max_batch_tokens,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    assert rs.prompt_index is not None and rt.prompt_index is not None
    assert rs.token_position is not None and rt.token_position is not None
    if not (
        torch.equal(rs.prompt_index, rt.prompt_index) and torch.equal(rs.token_position, rt.token_position)
    ):
        raise TransferError("Source and target rows do not align token for token (this is a bug).")
    n_tok = sum(len(s) for s in ids)
    prov = {
        "src": src.spec,
        "src_fingerprint": src.fingerprint(),
        "tgt": tgt.spec,
        "tgt_fingerprint": tgt.fingerprint(),
        "prompt_hash": prompt_hash(prompts),
        "n_prompts": len(prompts),
        "n_tokens": n_tok,
        "seconds": seconds,
        "tokens_per_second": n_tok / max(seconds, 1e-9),
    }
    return PairedActivations(
        {x: rs.rows[Site(x, src_point).key].float() for x in src_layers},  # type: ignore[arg-type]
        {x: rt.rows[Site(x, tgt_point).key].float() for x in tgt_layers},  # type: ignore[arg-type]
        rs.prompt_index,
        rs.token_position,
        src_point,
        tgt_point,
        prov,
    )
