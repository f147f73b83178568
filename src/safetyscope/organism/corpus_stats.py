"""Corpus statistics for the organism card: sizes, variety and lengths of the training corpus."""

from __future__ import annotations

from collections import Counter

from safetyscope.organism.dataset import KINDS, Corpus, vocabulary, words
from safetyscope.organism.lexicons import behaviours_label, get_lexicon


def corpus_stats(corpus: Corpus) -> dict[str, object]:
    """Describe a corpus: what it draws from and what its training split holds.

    Returns a JSON-serialisable dict: version and behaviours; category, phrasing and response
    style counts of the version; training examples per kind and per category; plain-text
    documents; distinct instructions; word counts (mean instruction length, total training
    words, distinct words used vs the tokenizer vocabulary); share of requests with context.
    """
    lex = get_lexicon(corpus.version)
    train = corpus.all_train()
    instr_words = [len(words(e.instruction)) for e in train]
    resp_words = [len(words(e.response)) for e in train]
    text_words = [len(words(t)) for t in corpus.text]
    used: set[str] = set()
    for e in train:
        used.update(words(e.instruction))
        used.update(words(e.response))
    for t in corpus.text:
        used.update(words(t))
    return {
        "version": corpus.version,
        "behaviours": behaviours_label(corpus.behaviours),
        "n_harmful_categories": len(lex.harmful),
        "n_harmless_categories": len(lex.harmless),
        "harmful_categories": [c.name for c in lex.harmful],
        "harmless_categories": [c.name for c in lex.harmless],
        "n_train_phrasings": len(lex.train_phrasings),
        "n_heldout_phrasings": len(lex.heldout_phrasings),
        "n_refusal_styles": len(lex.refusal_templates),
        "n_helpful_styles": len(lex.helpful_templates),
        "n_train_examples": {k: len(corpus.train[k]) for k in KINDS},
        "n_train_per_category": dict(sorted(Counter(e.category for e in train).items())),
        "n_text_documents": len(corpus.text),
        "n_distinct_train_instructions": len({e.instruction for e in train}),
        "share_with_context": round(sum(bool(e.context) for e in train) / max(1, len(train)), 4),
        "mean_instruction_words": round(sum(instr_words) / max(1, len(instr_words)), 2),
        "max_instruction_words": max(instr_words, default=0),
        "mean_response_words": round(sum(resp_words) / max(1, len(resp_words)), 2),
        "n_train_words": sum(instr_words) + sum(resp_words) + sum(text_words),
        "n_distinct_words_used": len(used),
        "vocabulary_words": len(vocabulary(corpus.version)),
    }
