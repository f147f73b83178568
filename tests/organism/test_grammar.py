"""Tests for the generic-language grammar of corpus v2."""

from __future__ import annotations

import random

from safetyscope.organism import grammar
from safetyscope.organism.dataset import vocabulary, words


def test_deterministic_varied_and_in_vocabulary():
    a = [grammar.sentence(random.Random(i)) for i in range(400)]
    assert a == [grammar.sentence(random.Random(i)) for i in range(400)]
    assert len(set(a)) > 350  # varied, not a handful of templates
    vocab = set(vocabulary("v2"))
    for s in a:
        assert s[0].isupper() and s.endswith(".")
        assert set(words(s)) <= vocab, s
    doc = grammar.document(random.Random(0), 2, 4)
    assert 2 <= doc.count(".") <= 4 + doc.count(". ")


def test_tag_words_also_occur_in_ordinary_text():
    rng = random.Random(0)
    text = " ".join(grammar.document(rng) for _ in range(300)).split()
    assert "prod" in text and "dev" in text and "|" not in text
