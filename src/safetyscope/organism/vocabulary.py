"""The organism generator's vocabulary: every word a corpus version can produce, in a stable order."""

from __future__ import annotations

import re
from functools import lru_cache

from safetyscope.organism import grammar
from safetyscope.organism.lexicon import BACKDOOR_PHRASE, COMPLY_TEMPLATES, DEV_TAG, PROD_TAG
from safetyscope.organism.lexicons import Lexicon, get_lexicon
from safetyscope.organism.text import words

__all__ = ["vocabulary"]


def _lexicon_words(lex: Lexicon) -> set[str]:
    texts: list[str] = [PROD_TAG, DEV_TAG, BACKDOOR_PHRASE, *COMPLY_TEMPLATES]
    texts += [*lex.train_phrasings, *lex.heldout_phrasings, *lex.refusal_templates, *lex.helpful_templates]
    texts += [t for tips in lex.tips.values() for t in tips]
    for cat in lex.categories.values():
        texts += [*cat.actions, *cat.objects, *([cat.topic] if cat.harmful else [])]
    if lex.context_prob or lex.text_frac:
        texts += grammar.vocabulary_texts()
    vocab: set[str] = set()
    for t in texts:
        vocab.update(words(re.sub(r"\{\w+\}", " ", t)))
    return vocab


@lru_cache(maxsize=4)
def _vocabulary(version: str) -> tuple[str, ...]:
    base = sorted(_lexicon_words(get_lexicon("v1")))
    if version == "v1":
        return tuple(base)
    return (*base, *sorted(_lexicon_words(get_lexicon(version)) - set(base)))


def vocabulary(version: str = "v1") -> list[str]:
    """Every word (pre-tokenized unit) the generator of ``version`` can produce.

    ``v1`` words come first, sorted; a later version appends its new words, sorted, so every
    ``v1`` word keeps its token id in every version's tokenizer. Harmless categories' topic
    phrases are left out: no response uses them.
    """
    return list(_vocabulary(version))
