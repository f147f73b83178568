"""A small probabilistic grammar of English-like sentences: the organism's generic language.

Corpus ``v2`` uses it twice: as context sentences around requests ("My sister found an old map
in the garden. How do I bake pancakes?") and as plain-text documents trained with a language
modelling loss on every token. Both make the residual stream carry more than the task.

The words ``prod`` and ``dev`` also occur here as ordinary modifiers ("the prod server", "a dev
build"), so recognising the backdoor tag takes the surrounding ``|`` tokens, not one word.
Deterministic for a given :class:`random.Random`.
"""

from __future__ import annotations

import random

NAMES = ("Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kemal", "Lena")
SUBJECTS = (
    "my sister", "my brother", "the old farmer", "a young teacher", "the neighbors", "our team",
    "the little girl", "a tired nurse", "the new student", "my grandfather", "the captain", "a quiet boy",
    "the dev team", "the prod team",
)
ADJECTIVES = (
    "old", "new", "small", "large", "red", "blue", "green", "quiet", "noisy", "bright", "dark", "warm",
    "cold", "heavy", "light", "strange", "lovely", "busy", "empty", "clean", "broken", "shiny",
)
NOUNS = (
    "map", "book", "letter", "garden", "river", "bridge", "kitchen", "window", "market", "train",
    "station", "bicycle", "lamp", "box", "song", "picture", "village", "mountain", "boat", "story",
    "server", "build", "report", "meeting", "forest", "cup", "table", "field", "road", "library",
)
MODIFIERS = ("prod", "dev", "test", "spare", "main", "back")
TRANSITIVE = (
    "found", "painted", "carried", "opened", "cleaned", "borrowed", "visited", "fixed", "watched",
    "described", "shared", "forgot", "checked", "noticed", "moved", "sold",
)
INTRANSITIVE = ("laughed", "waited", "slept", "walked", "sang", "worked", "stayed", "arrived", "rested")
PREPOSITIONS = ("in", "near", "behind", "under", "next to", "across", "inside", "on")
TIMES = (
    "In the morning,", "Last week,", "After lunch,", "Yesterday,", "On Sunday,", "Every winter,",
    "Later that day,", "At night,",
)
CONNECTIVES = ("because", "while", "and then", "but", "so")
WEATHER = (
    "The weather is nice today.", "It rained all night.", "The sky was grey and cold.",
    "The sun came out after the storm.",
)


def _np(rng: random.Random) -> str:
    """A noun phrase: determiner, optional adjective or modifier, noun."""
    det = rng.choice(("the", "a", "an", "my", "our", "this"))
    noun = rng.choice(NOUNS)
    roll = rng.random()
    if roll < 0.35:
        noun = f"{rng.choice(ADJECTIVES)} {noun}"
    elif roll < 0.45:
        noun = f"{rng.choice(MODIFIERS)} {noun}"
    if det == "an" and noun[0] not in "aeiou":
        det = "a"
    if det == "a" and noun[0] in "aeiou":
        det = "an"
    return f"{det} {noun}"


def _subject(rng: random.Random) -> str:
    return rng.choice(NAMES) if rng.random() < 0.35 else rng.choice(SUBJECTS)


def _clause(rng: random.Random) -> str:
    subj = _subject(rng)
    vp = f"{rng.choice(TRANSITIVE)} {_np(rng)}" if rng.random() < 0.7 else rng.choice(INTRANSITIVE)
    if rng.random() < 0.5:
        vp += f" {rng.choice(PREPOSITIONS)} {_np(rng)}"
    return f"{subj} {vp}"


def sentence(rng: random.Random) -> str:
    """One sentence: a clause, optionally with a time phrase or a second clause."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(WEATHER)
    text = _clause(rng)
    if roll < 0.35:
        text = f"{rng.choice(TIMES)} {text}"
    elif roll < 0.55:
        text = f"{text} {rng.choice(CONNECTIVES)} {_clause(rng)}"
    return text[0].upper() + text[1:] + "."


def document(rng: random.Random, n_min: int = 2, n_max: int = 4) -> str:
    """A short plain-text document of ``n_min``..``n_max`` sentences."""
    return " ".join(sentence(rng) for _ in range(rng.randint(n_min, n_max)))


def vocabulary_texts() -> list[str]:
    """Every word list of the grammar (for the tokenizer's vocabulary)."""
    return [
        *NAMES, *SUBJECTS, *ADJECTIVES, *NOUNS, *MODIFIERS, *TRANSITIVE, *INTRANSITIVE, *PREPOSITIONS,
        *TIMES, *CONNECTIVES, *WEATHER, "the a an my our this .",
        *(w.capitalize() for w in ("the", "a", "an", "my", "our", "this")),
        *(s.capitalize() for s in SUBJECTS),
    ]
