"""Symmetric token replacement (STR): corrupted prompts that differ from the clean ones only in key words.

The key words of a clean prompt are the occurrences of ``key`` (``--key TEXT``), or, given a
counterfactual pair, the words spanned by the tokens where the pair differs. Each is replaced by a
word of a matched word list (one word a line, ``#`` comments; the bundled
``safetyscope/data/bundled/str_words.txt`` or a user file) such that the corrupted prompt has exactly
as many tokens as the clean one (so a patching sweep can align them position by position). The
candidates are tried in a seeded random order and the first that fits is taken; a word equal to the
key (case-insensitively) is never taken. Case follows the key (``Bomb`` -> ``Cake``).

Zhang & Nanda (2023) recommend STR over noise: the corrupted prompt stays in distribution.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safetyscope.causal.patch_spec import PatchingError
from safetyscope.model.loading import LoadedModel

#: The bundled word list (replace it with ``--str-words FILE``).
BUNDLED_WORDS = "str_words.txt"


@dataclass(frozen=True)
class Replacement:
    """One prompt's STR: the key word(s) replaced, the word put in their place, and the result."""

    prompt: int
    key: str
    replacement: str
    corrupted: str


def load_words(path: str | Path | None = None) -> list[str]:
    """The word list: one word (or short phrase) a line, ``#`` comments and blank lines skipped."""
    if path is None:
        text = resources.files("safetyscope.data.bundled").joinpath(BUNDLED_WORDS).read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PatchingError(f"Cannot read the STR word list {path}: {exc}") from exc
    words = [w.strip() for w in text.splitlines() if w.strip() and not w.strip().startswith("#")]
    if not words:
        raise PatchingError(f"The STR word list {path or BUNDLED_WORDS} has no words.")
    return list(dict.fromkeys(words))


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow ``[start, end)`` to whole words (letters, digits, ``'`` and ``-``), dropping edge spaces."""

    def inword(c: str) -> bool:
        return c.isalnum() or c in "'-_"

    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while start > 0 and inword(text[start - 1]) and start < len(text) and inword(text[start]):
        start -= 1
    while end < len(text) and end > 0 and inword(text[end]) and inword(text[end - 1]):
        end += 1
    return start, end


def differing_span(lm: LoadedModel, clean: str, corrupt: str) -> tuple[int, int]:
    """Character span of ``clean`` covering the tokens where ``clean`` and ``corrupt`` differ (whole words)."""
    a = lm.tokenizer(clean, add_special_tokens=False, return_offsets_mapping=True)
    b = lm.tokenizer(corrupt, add_special_tokens=False)["input_ids"]
    ids, offs = a["input_ids"], a["offset_mapping"]
    diff = [i for i in range(min(len(ids), len(b))) if ids[i] != b[i]]
    if len(ids) != len(b):
        diff += list(range(min(len(ids), len(b)), len(ids)))
    if not diff:
        raise PatchingError(
            f"The pair ({clean!r}, {corrupt!r}) has no differing token: STR has no key to replace; "
            "give --key TEXT."
        )
    return _widen(clean, offs[diff[0]][0], offs[diff[-1]][1])


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def str_corrupt(
    lm: LoadedModel,
    clean: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    key: str | None = None,
    words: str | Path | None = None,
    seed: int = 0,
    chat: bool = True,
) -> tuple[list[str], list[Replacement]]:
    """Corrupted prompts by symmetric token replacement, one per clean prompt, of equal token length.

    Args:
        lm: the model (its tokenizer and chat template decide token lengths).
        clean: the clean prompts.
        pairs: counterfactual prompts whose differing words are the keys (used when ``key`` is None).
        key: the text to replace in every clean prompt (every occurrence).
        words: a word-list file (default: the bundled list).
        seed: order in which candidates are tried.
        chat: lengths of chat-formatted prompts (``False``: raw tokenization).

    Raises:
        PatchingError: no key (neither ``key`` nor pairs), a key absent from a prompt, or no word of
            the list keeps the prompt's token length.
    """
    if key is None and pairs is None:
        raise PatchingError(
            "Corruption 'str' needs the key tokens: give --key TEXT, or counterfactual pairs "
            "(--corrupt FILE) whose differing words are replaced."
        )
    if key is not None and not key.strip():
        raise PatchingError("--key must be non-empty text.")
    if pairs is not None and len(pairs) != len(clean):
        raise PatchingError(
            f"{len(clean)} clean prompts but {len(pairs)} pair prompts; give one per clean prompt."
        )
    vocab = load_words(words)

    def n_tokens(text: str) -> int:
        if chat:
            return len(lm.chat.encode(text))
        return len(lm.tokenizer(text)["input_ids"])

    out, reps = [], []
    for i, text in enumerate(clean):
        if key is not None:
            spans, pos = [], text.find(key)
            while pos >= 0:
                spans.append((pos, pos + len(key)))
                pos = text.find(key, pos + len(key))
            if not spans:
                raise PatchingError(f"The key {key!r} does not occur in clean prompt {i}: {text!r}.")
        else:
            assert pairs is not None
            spans = [differing_span(lm, text, pairs[i])]
        word = text[spans[0][0] : spans[0][1]]
        target = n_tokens(text)
        order = list(vocab)
        random.Random(seed * 100003 + i).shuffle(order)
        chosen = None
        for cand in order:
            if cand.lower() == word.lower():
                continue
            cand = _cased(cand, word)
            new, last = [], 0
            for s, e in spans:
                new += [text[last:s], cand]
                last = e
            corrupted = "".join([*new, text[last:]])
            if n_tokens(corrupted) == target:
                chosen = (cand, corrupted)
                break
        if chosen is None:
            raise PatchingError(
                f"No word of the STR list keeps clean prompt {i} at {target} tokens when replacing "
                f"{word!r}; add words of that token length to the list (--str-words FILE)."
            )
        out.append(chosen[1])
        reps.append(Replacement(i, word, chosen[0], chosen[1]))
    return out, reps
