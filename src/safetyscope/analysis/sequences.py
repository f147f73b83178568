"""Token sequences and prompt pairs for the residual-stream geometry studies.

The studies read the *last token* of raw text (no chat template), as the papers do with web text:
each text is tokenized (with the tokenizer's own special tokens) and cut to ``seq_len`` tokens, so
every sequence has the same length. Pairs:

* ``different``: two distinct random sequences.
* ``similar``: a sequence and a copy whose last token is replaced by the last token of another
  sequence (a shared prefix, differing only in the last token).

:func:`default_texts` gives the organism's own corpus for organisms and the bundled prompts otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from safetyscope.errors import PromptError, SafetyscopeError
from safetyscope.model.loading import LoadedModel

PairKind = Literal["different", "similar"]
PAIR_KINDS: tuple[str, ...] = ("different", "similar")


@dataclass(frozen=True)
class Pairs:
    """Token sequences and index pairs ``(a, b)`` into them; ``kind`` is how the pairs were drawn."""

    seqs: tuple[tuple[int, ...], ...]
    pairs: tuple[tuple[int, int], ...]
    kind: str
    seed: int


def is_organism_dir(lm: LoadedModel) -> bool:
    """Whether ``lm`` is an organism or one of its checkpoints (its folder has a card or ``checkpoint.json``)."""
    return lm.path is not None and any((lm.path / f).is_file() for f in ("organism_card.json", "checkpoint.json"))


def default_texts(lm: LoadedModel, n: int = 400) -> tuple[list[str], str]:
    """Texts to cut sequences from, and their source's name: the organism corpus or the bundled prompts."""
    if is_organism_dir(lm):
        from safetyscope.organism.dataset import build_corpus

        corpus = build_corpus(seed=0, n_train=max(200, n), n_eval=50)
        texts = corpus.prompts("harmless", "train") + corpus.prompts("harmful", "train")
        return texts, "organism corpus (train instructions)"
    from safetyscope.data.bundled import load_bundled

    return list(load_bundled("harmless").prompts) + list(load_bundled("harmful").prompts), "bundled prompts"


def token_sequences(tokenizer: object, texts: Sequence[str], seq_len: int) -> list[tuple[int, ...]]:
    """Distinct sequences: each text's first ``seq_len`` tokens; shorter texts are skipped."""
    if seq_len < 2:
        raise SafetyscopeError(f"seq_len must be >= 2 (a prefix and a last token), got {seq_len}.")
    out: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    for text in texts:
        ids = tuple(int(t) for t in tokenizer(text, add_special_tokens=True)["input_ids"][:seq_len])  # type: ignore[operator]
        if len(ids) == seq_len and ids not in seen:
            seen.add(ids)
            out.append(ids)
    return out


def make_pairs(seqs: Sequence[tuple[int, ...]], kind: str, n: int, seed: int = 0) -> Pairs:
    """Draw ``n`` pairs of ``kind`` (``different`` or ``similar``) from ``seqs``.

    Raises:
        PromptError: too few distinct sequences for ``n`` pairs.
    """
    if kind not in PAIR_KINDS:
        raise SafetyscopeError(f"Unknown pair kind {kind!r}; use one of {PAIR_KINDS}.")
    if n < 1:
        raise SafetyscopeError(f"Need at least one pair, got n={n}.")
    rng = random.Random(seed)
    pool = list(seqs)
    if kind == "different":
        if len(pool) < 2 * n:
            raise PromptError(f"{n} different pairs need {2 * n} distinct sequences; only {len(pool)} are long "
                              "enough. Give more texts (--prompts) or a shorter --seq-len.")
        order = rng.sample(range(len(pool)), 2 * n)
        return Pairs(tuple(pool), tuple((order[2 * i], order[2 * i + 1]) for i in range(n)), kind, seed)
    if len(pool) < n:
        raise PromptError(f"{n} similar pairs need {n} distinct sequences; only {len(pool)} are long enough. "
                          "Give more texts (--prompts) or a shorter --seq-len.")
    lasts = sorted({s[-1] for s in pool})
    if len(lasts) < 2:
        raise PromptError("Similar pairs need sequences with at least two different last tokens.")
    out_seqs = list(pool)
    pairs = []
    for a in rng.sample(range(len(pool)), n):
        swap = rng.choice([t for t in lasts if t != pool[a][-1]])
        out_seqs.append((*pool[a][:-1], swap))
        pairs.append((a, len(out_seqs) - 1))
    return Pairs(tuple(out_seqs), tuple(pairs), kind, seed)
