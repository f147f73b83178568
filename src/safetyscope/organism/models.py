"""Freshly initialised organism models of each supported architecture (declarative configs).

Every architecture gets the same width, depth, heads, MLP width, vocabulary (the shared
organism tokenizer) and no dropout, so organisms of different families differ only in the
family's own design (bias terms, norms, parallel residual, rotary fraction). Initialisation
is seeded, so the randomly initialised twin of an organism is exactly its step-0 weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedModel

from safetyscope.errors import OptionError
from safetyscope.organism.tokenizer import MODEL_MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from safetyscope.organism.train import TrainConfig

#: Organism architectures: HF ``model_type`` -> family-specific config keys (the shared keys
#: come from the :class:`~safetyscope.organism.train.TrainConfig`).
ARCHS: dict[str, dict[str, Any]] = {
    "llama": {"rms_norm_eps": 1e-5, "attention_bias": False, "mlp_bias": False},
    "qwen2": {"rms_norm_eps": 1e-5, "use_sliding_window": False},
    "gpt_neox": {
        "layer_norm_eps": 1e-5, "rotary_pct": 1.0, "use_parallel_residual": True,
        "hidden_dropout": 0.0, "attention_dropout": 0.0, "hidden_act": "gelu",
    },
}
DEFAULT_ARCH = "llama"


def check_arch(arch: str) -> str:
    """Return ``arch`` if organisms can be built in that family, else raise :class:`OptionError`."""
    if arch not in ARCHS:
        raise OptionError(f"Unknown organism architecture {arch!r}; choose one of {sorted(ARCHS)}.")
    return arch


def make_model(
    cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase, seed: int, arch: str = DEFAULT_ARCH
) -> PreTrainedModel:
    """A freshly initialised model of family ``arch`` for ``cfg`` (seeded, deterministic, fp32)."""
    config = AutoConfig.for_model(
        check_arch(arch),
        vocab_size=len(tokenizer),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=MODEL_MAX_LENGTH,
        initializer_range=0.02,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **ARCHS[arch],
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = generation_config(tokenizer)
    return model


def generation_config(tokenizer: PreTrainedTokenizerBase, max_new_tokens: int = 32) -> GenerationConfig:
    """Greedy decoding settings saved with every organism."""
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
