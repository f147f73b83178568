"""Random transcoders for tiny models (for tests of the replacement model and graphs)."""

from __future__ import annotations

import torch

from safetyscope.sae import SparseAutoencoder
from safetyscope.transcoders import transcoder_config


def random_transcoders(
    lm, k: int = 4, d_sae: int = 48, layers=None, seed: int = 0
) -> dict[int, SparseAutoencoder]:
    """Seeded random TopK transcoders with positive encoder biases (so features fire)."""
    out = {}
    for layer in layers if layers is not None else range(lm.n_layers):
        tc = SparseAutoencoder.random(transcoder_config(lm.d_model, d_sae, layer, k=k), seed + layer)
        with torch.no_grad():
            tc.b_enc.fill_(0.5)
            tc.W_dec.mul_(0.3)
        out[layer] = tc.to(lm.device)
    return out
