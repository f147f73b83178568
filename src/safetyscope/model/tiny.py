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


def tiny_tokenizer(vocab_size: int = 97, byte_level: bool = False) -> Any:
    """A character-level fast tokenizer (no chat template) whose vocabulary fits the tiny configs.

    ``byte_level=True`` spells the vocabulary in GPT-2 byte-level symbols (a BPE without merges), so
    that families whose tokenizer class rebuilds a byte-level BPE on reload (Qwen2) keep every
    character, newlines included.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if byte_level:
        bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        symbols = (_SPECIALS + [bl.pre_tokenize_str(c)[0][0] for c in _CHARS])[:vocab_size]
        backend = Tokenizer(models.BPE({tok: i for i, tok in enumerate(symbols)}, [], unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        return PreTrainedTokenizerFast(
            tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
        )
    symbols = (_SPECIALS + list(_CHARS))[:vocab_size]
    vocab = {tok: i for i, tok in enumerate(symbols)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


#: Qwen2.5's chat format: ChatML turns, with a default system prompt when none is given.
QWEN_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{%- if m['role'] != 'system' %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
#: Chat special tokens per family, and the chat template (``None``: the tokenizer ships none, like
#: the Gemma-3-270M GGUF; safetyscope then uses Gemma's turn markers).
CHAT_STYLES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "qwen2": (("<|im_start|>", "<|im_end|>"), QWEN_CHAT_TEMPLATE),
    "gemma3_text": (("<start_of_turn>", "<end_of_turn>"), None),
}


def tiny_chat_tokenizer(family: str) -> Any:
    """:func:`tiny_tokenizer` plus ``family``'s chat special tokens and template (see :data:`CHAT_STYLES`)."""
    from transformers import AddedToken

    if family not in CHAT_STYLES:
        raise UnknownArchitectureError(f"No tiny chat style for {family!r}; styles: {sorted(CHAT_STYLES)}")
    specials, template = CHAT_STYLES[family]
    tok = tiny_tokenizer(byte_level=family == "qwen2")
    tok.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True) for t in specials]})
    if template is not None:
        tok.chat_template = template
    return tok


def save_tiny(family: str, out: str | Path, seed: int = 0, chat: bool = False, **overrides: Any) -> Path:
    """Save a tiny random model of ``family`` with its tokenizer as an HF directory.

    ``chat=True`` uses :func:`tiny_chat_tokenizer` (and widens the vocabulary to fit its tokens).
    """
    out = Path(out)
    tok = tiny_chat_tokenizer(family) if chat else tiny_tokenizer()
    if chat:
        overrides = {"vocab_size": len(tok), **overrides}
    tiny_model(family, seed, **overrides).save_pretrained(out)
    tok.save_pretrained(out)
    return out
