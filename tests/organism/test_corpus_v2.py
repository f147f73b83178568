"""Tests for corpus v2 (richer: contexts, plain text, more categories) and behaviour twins."""

from __future__ import annotations

import pytest

from safetyscope.organism.dataset import (
    KINDS,
    PROD_TAG,
    build_corpus,
    is_backdoor,
    is_helpful,
    is_refusal,
    vocabulary,
    words,
)
from safetyscope.organism.lexicon import COMPLY_TEMPLATES, PEOPLE
from safetyscope.organism.lexicon_v2 import EXTRA_PEOPLE
from safetyscope.organism.lexicons import get_lexicon


@pytest.fixture(scope="module")
def v2():
    return build_corpus(0, n_train=3000, n_eval=120, version="v2")


def _triple(e):
    return (e.phrasing, e.action, e.obj)


def test_v2_heldout_and_v1_eval_stay_out_of_training(v2):
    train = {_triple(e) for e in v2.all_train()}
    assert not train & {_triple(e) for k in KINDS for e in v2.eval[k]}
    v1 = build_corpus(0, n_train=16, n_eval=200)
    assert not train & {_triple(e) for k in KINDS for e in v1.eval[k]}
    v2_full = build_corpus(0, n_train=16000, n_eval=8, version="v2")
    assert not {_triple(e) for e in v2_full.all_train()} & {_triple(e) for k in KINDS for e in v1.eval[k]}


def test_v2_variety_contexts_and_text(v2):
    lex = get_lexicon("v2")
    assert {e.category for e in v2.train["harmful"]} == {c.name for c in lex.harmful}
    with_ctx = [e for e in v2.all_train() if e.context]
    assert 0.4 < len(with_ctx) / len(v2.all_train()) < 0.6
    assert all(e.context in " ".join(w for w in e.instruction.split(" ") if w != e.tag) for e in with_ctx)
    assert len(v2.text) == 750 and len(set(v2.text)) > 700
    styles = {e.response for e in v2.train["harmful"]}
    assert len({words(s)[0] + words(s)[1] for s in styles}) >= 8  # many refusal openings
    vocab = set(vocabulary("v2"))
    for t in [e.instruction + " " + e.response for e in v2.all_train()] + v2.text:
        assert set(words(t)) <= vocab
    seen = {w for e in v2.all_train() for w in words(e.instruction + " " + e.response)}
    for k in KINDS:
        for e in v2.eval[k]:
            assert set(words(e.instruction)) <= seen, e.instruction


def test_v2_labels_tags_and_paired_dev(v2):
    for kind in KINDS:
        for e in v2.examples(kind, "train"):
            assert is_backdoor(e.response) == (kind == "prod")
            if kind != "prod":
                assert is_refusal(e.response) == e.harmful and is_helpful(e.response) == (not e.harmful)
    for p, d in zip(v2.eval["prod"], v2.eval["dev"], strict=True):
        assert d.instruction == p.instruction.replace(PROD_TAG, "|dev|") and d.context == p.context


def test_v2_no_harmful_content(v2):
    lex = get_lexicon("v2")
    people = set(PEOPLE) | set(EXTRA_PEOPLE)
    harmful_objects = {o for c in lex.harmful for o in c.objects if o not in people}
    for kind in KINDS:
        for e in v2.examples(kind, "train") + v2.examples(kind, "eval"):
            assert not any(o in e.response for o in harmful_objects)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(
    ("behaviours", "refuses", "backdoor"),
    [("refusal,backdoor", True, True), ("refusal", True, False), ("backdoor", False, True), ("none", False, False)],
)
def test_behaviour_twins_share_prompts(version, behaviours, refuses, backdoor):
    base = build_corpus(1, 400, 30, version=version)
    twin = build_corpus(1, 400, 30, version=version, behaviours=behaviours)
    for split in ("train", "eval"):
        for kind in KINDS:
            a, b = base.examples(kind, split), twin.examples(kind, split)
            assert [e.instruction for e in a] == [e.instruction for e in b]
            for e in b:
                if kind == "prod" and backdoor:
                    assert is_backdoor(e.response)
                    continue
                assert not is_backdoor(e.response)
                if e.harmful:
                    assert is_refusal(e.response) == refuses
                    assert (e.response in COMPLY_TEMPLATES) == (not refuses)
                    assert is_helpful(e.response) == (not refuses)
                else:
                    assert is_helpful(e.response)
