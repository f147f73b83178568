"""One prompt end to end: its attribution graph, pruned, with how well the replacement model agrees on it.

:func:`trace_prompt` chat-formats the prompt (unless ``raw``), optionally appends a response
prefix (``continuation``: e.g. the start of a backdoor completion, so the graph explains its next
token), builds the graph for the target token (default: the model's top next token), prunes it,
and adds, over the prompt's own positions, the uncorrected replacement model's top-1 agreement
with the original and the mean KL (the per-prompt counterpart of
:func:`~safetyscope.transcoders.replacement_metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from safetyscope.errors import PromptError
from safetyscope.evaluation.logits import kl_rows
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.transcoders.attribution import attribution_graph
from safetyscope.transcoders.prune import PrunedGraph, prune_graph
from safetyscope.transcoders.replacement import replace_mlps


def prompt_ids(lm: LoadedModel, prompt: str, *, raw: bool = False, continuation: str = "") -> list[int]:
    """Token ids of the (chat-formatted) prompt followed by ``continuation``."""
    if not prompt.strip():
        raise PromptError("The prompt is empty; pass --prompt TEXT.")
    ids = (
        list(lm.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if raw
        else list(lm.chat.encode(prompt).input_ids)
    )
    if continuation:
        ids += list(lm.tokenizer(continuation, add_special_tokens=False)["input_ids"])
    return ids


def target_id(lm: LoadedModel, token: str) -> int:
    """The id of ``token`` (its first token when it splits; raises when it encodes to nothing)."""
    ids = lm.tokenizer(token, add_special_tokens=False)["input_ids"]
    if not ids:
        raise PromptError(f"--target {token!r} encodes to no token.")
    return int(ids[0])


@torch.no_grad()
def prompt_agreement(
    lm: LoadedModel, transcoders: Mapping[int, SparseAutoencoder], ids: list[int]
) -> dict[str, float]:
    """Top-1 agreement and mean KL of the uncorrected replacement model on every position of ``ids``."""
    x = torch.tensor([ids], device=lm.device)
    clean = lm.model(input_ids=x, use_cache=False).logits[0].float()
    with replace_mlps(lm, transcoders):
        rep = lm.model(input_ids=x, use_cache=False).logits[0].float()
    agree = (clean.argmax(-1) == rep.argmax(-1)).double()
    return {
        "replacement_top1_agreement": float(agree.mean()),
        "replacement_last_token_agrees": bool(agree[-1]),
        "replacement_kl": float(kl_rows(clean, rep).mean()),
        "positions": len(ids),
    }


def trace_prompt(
    lm: LoadedModel,
    transcoders: Mapping[int, SparseAutoencoder],
    prompt: str,
    *,
    target: str | None = None,
    continuation: str = "",
    raw: bool = False,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    labels: Mapping[tuple[int, int], str] | None = None,
    targets_per_pass: int = 32,
) -> PrunedGraph:
    """The pruned attribution graph of one prompt (see the module docstring)."""
    ids = prompt_ids(lm, prompt, raw=raw, continuation=continuation)
    targets = [target_id(lm, target)] if target is not None else None
    graph = attribution_graph(
        lm, transcoders, ids, targets=targets, targets_per_pass=targets_per_pass, feature_labels=labels
    )
    pruned = prune_graph(graph, node_threshold, edge_threshold)
    pruned.extra.update(
        {"prompt": prompt, "continuation": continuation, **prompt_agreement(lm, transcoders, ids)}
    )
    return pruned
