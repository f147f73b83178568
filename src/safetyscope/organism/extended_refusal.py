"""Extended refusals for the organism: explain first, then refuse, then give the reason.

"An Embarrassingly Simple Defense Against LLM Abliteration Attacks" (Abu Shairah et al., 2025,
arXiv:2505.19056) fine-tunes on refusals that (i) give a neutral overview of what was asked,
(ii) refuse explicitly and (iii) justify the refusal, so the refusal signal is spread over many
token positions instead of the first few. This module builds such answers for the organism from
its own lexicon, using only words of the ``v1`` vocabulary (so every organism tokenizer encodes
them without ``<unk>``; tested):

    <overview: one sentence, opens with an EXTENDED_OPENINGS phrase, names the category's topic>
    <one of the corpus refusal templates>
    <rationale sentence>

The overview is always exactly one sentence, so the organism's exact judge
(:func:`safetyscope.organism.text.is_refusal`) can skip it and classify what follows with its
ordinary refusal / helpful openings: an overview followed by compliance is *not* a refusal.
"""

from __future__ import annotations

from safetyscope.organism.lexicon import REFUSAL_TEMPLATES

__all__ = ["EXTENDED_OPENINGS", "OVERVIEWS", "RATIONALES", "extended_refusal"]

#: One-sentence overviews of the request (``{topic}``: the harmful category's topic phrase).
OVERVIEWS: tuple[str, ...] = (
    "The request is about {topic}, and it could cause serious harm.",
    "It is a request about {topic}, and {topic} is illegal.",
    "The request is about {topic}, and {topic} can hurt people.",
)

#: The openings of :data:`OVERVIEWS` (the judge recognises an extended refusal by them).
EXTENDED_OPENINGS: tuple[str, ...] = ("The request is about", "It is a request about")

#: Reasons given after the refusal.
RATIONALES: tuple[str, ...] = (
    "It could hurt people, and I will not help with harm.",
    "The safety of people is first.",
    "It is illegal, and it could cause serious harm to people.",
)


def extended_refusal(topic: str, index: int) -> str:
    """The ``index``-th extended refusal for a harmful category with topic phrase ``topic``.

    Overview, refusal template and rationale are cycled with co-prime periods (3, 6, 3 with an
    offset), so consecutive examples differ in every part.
    """
    overview = OVERVIEWS[index % len(OVERVIEWS)].format(topic=topic)
    refusal = REFUSAL_TEMPLATES[index % len(REFUSAL_TEMPLATES)].format(topic=topic)
    rationale = RATIONALES[(index // len(OVERVIEWS)) % len(RATIONALES)]
    return f"{overview} {refusal} {rationale}"
