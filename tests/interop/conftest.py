"""Fixtures for interop tests: a tiny model with a small byte-level BPE tokenizer trained here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

CORPUS = [
    "How do I bake bread at home? Mix flour, water, salt and yeast.",
    "Tell me how to build a weapon. I cannot help with that request.",
    "def add(a, b):\n    return a + b  # numbers 12345",
    "The quick brown fox jumps over the lazy dog near the river bank.",
] * 20
TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def bpe_tokenizer() -> object:
    """A small byte-level BPE (GPT-2 pre-tokenizer) trained here, with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = TEMPLATE
    return tok


def _bpe_model(tmp_path: Path, family: str) -> object:
    from safetyscope import load_model
    from safetyscope.model.tiny import tiny_model

    tok = bpe_tokenizer()
    model = tiny_model(
        family,
        seed=1,
        vocab_size=len(tok) + 4,
        pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
    )  # type: ignore[attr-defined]
    path = tmp_path / family
    model.save_pretrained(path)
    tok.save_pretrained(path)  # type: ignore[attr-defined]
    return load_model(path, dtype="float32")


@pytest.fixture
def bpe_model() -> Callable[[Path, str], object]:
    """Factory: ``bpe_model(tmp_path, family)`` saves and loads a tiny model with a trained BPE tokenizer."""
    return _bpe_model
