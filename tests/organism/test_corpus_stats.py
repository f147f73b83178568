"""Tests for the corpus statistics recorded in the organism card."""

from __future__ import annotations

import json

from safetyscope.organism.corpus_stats import corpus_stats
from safetyscope.organism.dataset import build_corpus, vocabulary


def test_stats_describe_the_corpus():
    c = build_corpus(0, n_train=400, n_eval=10, version="v2", behaviours="refusal")
    s = corpus_stats(c)
    json.dumps(s)
    assert s["version"] == "v2" and s["behaviours"] == "refusal"
    assert sum(s["n_train_examples"].values()) == 400 == sum(s["n_train_per_category"].values())
    assert s["n_text_documents"] == len(c.text) == 100
    assert s["n_harmful_categories"] == 10 and s["n_harmless_categories"] == 13
    assert s["vocabulary_words"] == len(vocabulary("v2")) >= s["n_distinct_words_used"]
    assert 0 < s["share_with_context"] < 1 and s["mean_instruction_words"] > 10
    v1 = corpus_stats(build_corpus(0, n_train=400, n_eval=10))
    assert v1["n_text_documents"] == 0 and v1["share_with_context"] == 0.0
    assert v1["max_instruction_words"] < s["max_instruction_words"]
