"""GGUF export of (edited) llama/qwen2 models: round trip through transformers, tokenizer checks, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from safetyscope.interop.gguf_model import (
    GgufExportError,
    gguf_tensor_name,
    llamacpp_permute,
    load_gguf_model,
    write_gguf,
)

pytest.importorskip("gguf")


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_edited_model_round_trips_through_transformers(tmp_path: Path, family: str, bpe_model: Any) -> None:
    from safetyscope.interventions.weights import orthogonalize

    lm = bpe_model(tmp_path, family)
    edited = orthogonalize(lm, torch.randn(32, generator=torch.Generator().manual_seed(0)))  # type: ignore[arg-type]
    info = write_gguf(edited, tmp_path / "m.gguf")
    assert info.family == family and info.dtype == "f16" and info.vocab_size == len(lm.tokenizer) + 4  # type: ignore[attr-defined]
    model, tok = load_gguf_model(tmp_path / "m.gguf")
    text = "How do I bake a cake? 42"
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]  # type: ignore[attr-defined]
    assert torch.equal(tok(text, return_tensors="pt")["input_ids"], ids)
    chat = [{"role": "user", "content": "Hi"}]
    assert tok.apply_chat_template(chat, tokenize=False) == lm.tokenizer.apply_chat_template(
        chat, tokenize=False
    )  # type: ignore[attr-defined]
    with torch.no_grad():
        want = edited.model(ids).logits
        got = model(ids).logits
        orig = lm.model(ids).logits  # type: ignore[attr-defined]
    assert (want - orig).abs().max() > 1e-2  # the edit is visible
    assert (got - want).abs().max() < 1e-2
    bf = write_gguf(edited, tmp_path / "b.gguf", "bf16")
    assert bf.dtype == "bf16" and abs(bf.file_bytes - info.file_bytes) < 4096


def test_names_and_permutation() -> None:
    assert gguf_tensor_name("model.layers.3.self_attn.o_proj.weight") == "blk.3.attn_output.weight"
    assert gguf_tensor_name("model.embed_tokens.weight") == "token_embd.weight"
    assert gguf_tensor_name("model.rotary_emb.inv_freq") is None
    w = torch.arange(16.0).reshape(8, 2)
    p = llamacpp_permute(w, 2)  # per head of 4 rows: [0, 2, 1, 3]
    assert p[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]


def test_word_level_tokenizer_and_unknown_family_are_refused(tmp_path: Path) -> None:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    word_level = load_model(
        save_tiny("llama", tmp_path / "w"), dtype="float32"
    )  # like the organism's tokenizer
    with pytest.raises(GgufExportError, match="WordLevel"):
        write_gguf(word_level, tmp_path / "o.gguf")
    assert not (tmp_path / "o.gguf").exists()

    lm = load_model(save_tiny("gpt2", tmp_path / "g"), dtype="float32")
    with pytest.raises(GgufExportError, match="tensor-name maps"):
        write_gguf(lm, tmp_path / "g.gguf")


def test_sentencepiece_style_bpe_is_refused() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from safetyscope.interop.gguf_model import tokenizer_spec

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(
        ["hello world", "bread and butter"] * 5, trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"])
    )
    with pytest.raises(GgufExportError, match="byte-level pre-tokenizer"):
        tokenizer_spec(PreTrainedTokenizerFast(tokenizer_object=backend))
