"""Suffix probes (Anthropic 2025, "Cost-effective constitutional classifiers via representation re-use").

A short classification question is appended to each instruction, e.g. *"Is this request
harmful? Answer yes or no."*, and the probe reads the residual stream at the last token before
the model answers, which now follows the suffix. The question makes the model compute the
property at the read position, so the probe need not find it wherever it happens to live.
Compare the suffix probe with the plain probe at the same layers, same split and same control
(:func:`safetyscope.analysis.probes.probe_layers`).

Word-level tokenizers (the organism's) map unknown words to ``<unk>``; :func:`check_suffix`
refuses such a suffix, and :func:`default_suffix` picks one the tokenizer knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safetyscope.errors import PromptError

#: The suffix for models with an open vocabulary.
DEFAULT_SUFFIX = "Is this request harmful? Answer yes or no."
#: The organism's vocabulary has no "harmful" or "this": the closest question it can spell.
ORGANISM_SUFFIX = "Is the request illegal or harm ?"


def with_suffix(prompts: Sequence[str], suffix: str) -> list[str]:
    """Each instruction followed by a space and ``suffix``."""
    if not suffix.strip():
        raise PromptError(
            f"The probe suffix is empty; pass a classification question, e.g. {DEFAULT_SUFFIX!r}."
        )
    return [f"{p.rstrip()} {suffix.strip()}" for p in prompts]


def check_suffix(tokenizer: Any, suffix: str) -> list[int]:
    """Token ids of ``suffix``; raises :class:`PromptError` when any is the unknown token."""
    ids = list(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and unk in ids:
        words = [tokenizer.convert_ids_to_tokens(i) for i in ids]
        raise PromptError(
            f"The suffix {suffix!r} has words this tokenizer does not know ({words}); "
            "use words of its vocabulary."
        )
    if not ids:
        raise PromptError(f"The suffix {suffix!r} tokenizes to nothing.")
    return ids


def default_suffix(tokenizer: Any) -> str:
    """:data:`DEFAULT_SUFFIX` when the tokenizer spells it without unknown tokens, else :data:`ORGANISM_SUFFIX`."""
    try:
        check_suffix(tokenizer, DEFAULT_SUFFIX)
        return DEFAULT_SUFFIX
    except PromptError:
        return ORGANISM_SUFFIX
