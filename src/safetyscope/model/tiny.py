"""Tiny randomly initialised models of every supported family, built offline.

They make parity tests (hooks vs ``output_hidden_states``, weight edits vs hook edits) cheap for
every architecture safetyscope supports, and let users test their own code the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from safetyscope.errors import UnknownArchitectureError
from safetyscope.model.architectures import ARCHITECTURES

#: Families with a tiny config (every built-in architecture map).
TINY_FAMILIES: tuple[str, ...] = tuple(sorted(ARCHITECTURES))

_COMMON: dict[str, Any] = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, head_dim=8, vocab_size=97, max_position_embeddings=256,
    pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    # GPT-2 names
    n_embd=32, n_layer=3, n_head=4, n_positions=256, n_inner=64,
    # no dropout so that runs are deterministic
    attention_dropout=0.0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, hidden_dropout=0.0,
)


def tiny_config(family: str, **overrides: Any) -> Any:
    """A small config (d_model 32, 3 layers, vocab 97) for ``family`` with random-init-friendly values."""
    if family not in ARCHITECTURES:
        raise UnknownArchitectureError(f"No tiny config for {family!r}; families: {list(TINY_FAMILIES)}")
    config = AutoConfig.for_model(family)
    for key, value in {**_COMMON, **overrides}.items():
        if hasattr(config, key) or key in overrides:
            setattr(config, key, value)
    if family == "gpt_neox":
        config.rotary_pct = 1.0
    if family in {"gemma2", "gemma3_text"}:
        config.sliding_window = 16
        config.query_pre_attn_scalar = 8
    if hasattr(config, "layer_types") and config.layer_types is not None:
        config.layer_types = [config.layer_types[i % len(config.layer_types)] for i in range(config.num_hidden_layers)]
    return config


def tiny_model(family: str, seed: int = 0, **overrides: Any) -> PreTrainedModel:
    """A randomly initialised (seeded) fp32 model of ``family`` in eval mode."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), dtype=torch.float32)
    return model.eval()


_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
_CHARS = " \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"()[]{}<>|#*-_/+=&%$@~"


def tiny_tokenizer(vocab_size: int = 97) -> Any:
    """A character-level fast tokenizer (no chat template) whose vocabulary fits the tiny configs."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = (_SPECIALS + list(_CHARS))[:vocab_size]
    vocab = {tok: i for i, tok in enumerate(symbols)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def save_tiny(family: str, out: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny random model of ``family`` with :func:`tiny_tokenizer` as an HF directory."""
    out = Path(out)
    tiny_model(family, seed, **overrides).save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    return out
