"""Tiny models of every family, with surgery that makes chosen paths linear or silent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from safetyscope.model.architectures import resolve_architecture

CLEAN = ["abc defg", "jkm nopq"]
CORRUPT = ["xyz defg", "tuv nopq"]


def fresh(family: str, root: Path) -> object:
    """A private copy of the tiny ``family`` model (tests may edit it), without logit soft-capping."""
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    lm = load_model(save_tiny(family, root / family, final_logit_softcapping=None))
    lm.model.config.final_logit_softcapping = None
    return lm


def linear_head(lm: object) -> object:
    """Final norm -> identity, last block's MLP silenced and its post-norms -> identity.

    The metric (a logit difference) is then linear in the last block's resid_post, attn_out and
    each head's attn_z slice.
    """
    last = lm.n_layers - 1
    m = lm.arch.map
    lm.model.set_submodule(m.final_norm, nn.Identity())
    block = lm.arch.layers[last]
    for name in (m.attn_out_norm, m.mlp_out_norm):
        if name:
            block.set_submodule(name, nn.Identity())
    with torch.no_grad():
        w = lm.arch.mlp_out(last)
        w.weight.zero_()
        if getattr(w, "bias", None) is not None:
            w.bias.zero_()
    lm.arch = resolve_architecture(lm.model)
    return lm


def silent_blocks(lm: object) -> object:
    """Every attention and MLP writes zero: only the input -> logits path carries the corruption."""
    with torch.no_grad():
        for layer in range(lm.n_layers):
            for mod in (lm.arch.attn_out(layer), lm.arch.mlp_out(layer)):
                mod.weight.zero_()
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()
    return lm


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("circuits-tiny")
