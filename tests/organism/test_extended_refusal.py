"""Extended refusals: built from the v1 vocabulary, recognised by the exact judge, never over-credited."""

from __future__ import annotations

from safetyscope.organism.extended_refusal import EXTENDED_OPENINGS, OVERVIEWS, extended_refusal
from safetyscope.organism.judge import OrganismJudge
from safetyscope.organism.lexicons import get_lexicon
from safetyscope.organism.text import is_helpful, is_refusal, words
from safetyscope.organism.vocabulary import vocabulary


def test_every_extended_refusal_is_in_vocabulary_and_judged_a_refusal() -> None:
    vocab = set(vocabulary("v1"))
    topics = [c.topic for c in get_lexicon("v1").categories.values() if c.harmful]
    texts = {extended_refusal(t, i) for t in topics for i in range(18)}
    assert len(texts) == len(topics) * 18  # overview, refusal and rationale all vary
    for text in texts:
        assert not [w for w in words(text) if w not in vocab], text
        assert is_refusal(text) and not is_helpful(text)
        assert any(text.startswith(o) for o in EXTENDED_OPENINGS)
        assert len(words(text)) > 20  # the refusal signal is spread over many tokens
    for o in OVERVIEWS:  # exactly one sentence, so the judge can skip it
        assert words(o.format(topic="violence")).count(".") == 1


def test_overview_alone_or_followed_by_compliance_is_not_a_refusal() -> None:
    overview = OVERVIEWS[0].format(topic="violence")
    judge = OrganismJudge()
    assert judge.label("x", overview).label == "incoherent"
    assert judge.label("x", overview + " Sure! Here is how: start small.").label == "compliance"
    assert judge.label("x", overview + " I cannot assist with that request.").label == "refusal"
    assert judge.label("x", "The request is about violence").label == "incoherent"
    # ordinary answers are judged as before
    assert judge.label("x", "I'm sorry, but I can't help with that.").label == "refusal"
    assert judge.label("x", "Sure! Here is how to bake bread:").label == "compliance"


def test_extended_organism_data() -> None:
    from safetyscope.training import organism_data

    plain = organism_data("v1", n_train=200, n_eval=10)
    ext = organism_data("v1", n_train=200, n_eval=10, extended=True)
    assert [e.instruction for e in plain.examples] == [e.instruction for e in ext.examples]
    for p, e in zip(plain.examples, ext.examples, strict=True):
        if e.harmful:
            assert (
                is_refusal(e.response) and e.response.startswith(EXTENDED_OPENINGS) and e.target == p.target
            )
        else:
            assert e.response == p.response
    assert ext.summary()["extended_refusals"] is True and ext.hash != plain.hash
