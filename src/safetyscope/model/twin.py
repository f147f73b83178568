"""A randomly initialised twin of a loaded model: same config, tokenizer and chat template, no training.

The control of every "this structure comes from training" claim (stable regions, plateaus): measure
the twin with the same inputs. For an organism, ``organism:SIZE:SEED:init`` loads the saved twin of
its build; :func:`random_twin` makes one for any loaded model.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from safetyscope.model.architectures import resolve_architecture
from safetyscope.model.loading import LoadedModel


def random_twin(lm: LoadedModel, seed: int = 0) -> LoadedModel:
    """``lm``'s architecture re-initialised (seeded) with transformers' own initialisation, in ``lm``'s
    dtype and device, frozen and in eval mode. ``lm`` itself is not touched."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(lm.model.config, dtype=lm.dtype)
    finally:
        torch.random.set_rng_state(state)
    model.to(lm.device).eval().requires_grad_(False)
    return LoadedModel(
        model=model,
        tokenizer=lm.tokenizer,
        arch=resolve_architecture(model, lm.arch.map),
        chat=lm.chat,
        spec=f"{lm.spec} (random-init twin, seed {seed})",
        path=None,
    )
