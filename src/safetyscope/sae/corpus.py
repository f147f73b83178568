"""Token sequences to read activations from: the organism corpus, prompts, text files, or the model's own text.

A corpus spec is one short string:

* ``organism[:N]``: ``N`` organism training examples (chat prompt + response), default 2000;
* ``bundled``: the bundled harmful and harmless prompts, chat-formatted (prompts only);
* ``prompts:PATH``: a prompt file (.txt/.jsonl/.csv/.parquet), chat-formatted;
* ``text:PATH``: plain text (one document per non-blank line) or JSON Lines with a ``text`` field;
* ``generate[:N]``: ``N`` continuations the model samples itself (seeded) from the bundled
  harmless prompts: the corpus when none is at hand.

Each sequence carries the token positions to read: every token (``positions="all"``, the
first token skipped when it is a BOS, whose norm dwarfs the rest) or a
:class:`~safetyscope.activations.Positions` selector for chat prompts (``eoi``, ``last``...).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from safetyscope.activations.sites import Positions
from safetyscope.data.jsonl import iter_jsonl
from safetyscope.errors import PromptError
from safetyscope.model.loading import LoadedModel


@dataclass(frozen=True)
class TokenSeq:
    """One sequence of token ids and the positions of it to read."""

    ids: tuple[int, ...]
    positions: tuple[int, ...]


@dataclass
class TokenCorpus:
    """Sequences plus the spec they came from and a content hash (for provenance and caching)."""

    spec: str
    seqs: list[TokenSeq]

    @property
    def n_tokens(self) -> int:
        """Selected positions over all sequences."""
        return sum(len(s.positions) for s in self.seqs)

    @property
    def hash(self) -> str:
        """SHA-256 (16 hex) of every sequence's ids and positions."""
        h = hashlib.sha256()
        for s in self.seqs:
            h.update(repr((s.ids, s.positions)).encode())
        return h.hexdigest()[:16]


def _chat_seq(lm: LoadedModel, instruction: str, pos: Positions, suffix: list[int], skip_bos: bool,
              max_len: int) -> TokenSeq:
    enc = lm.chat.encode(instruction)
    ids = list(enc.input_ids) + suffix
    chosen = _all(ids, lm, skip_bos) if pos.kind == "all" else pos.select(enc)
    return TokenSeq(tuple(ids[:max_len]), tuple(p for p in chosen if p < max_len))


def _all(ids: list[int], lm: LoadedModel, skip_bos: bool) -> list[int]:
    bos = lm.tokenizer.bos_token_id
    start = 1 if skip_bos and ids and bos is not None and ids[0] == bos else 0
    return list(range(start, len(ids)))


def _text_docs(path: Path) -> list[str]:
    if not path.is_file():
        raise PromptError(f"Corpus file {path} does not exist.")
    if path.suffix == ".jsonl":
        docs = []
        for line, row in iter_jsonl(path, PromptError):
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise PromptError(f"{path}:{line}: each JSON line needs a string field 'text'.")
            docs.append(row["text"])
    else:
        docs = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise PromptError(f"Corpus file {path} holds no text.")
    return docs


def load_corpus(lm: LoadedModel, spec: str, positions: Positions | str = "all", *, max_len: int = 128,
                skip_bos: bool = True, seed: int = 0) -> TokenCorpus:
    """Resolve a corpus spec (see the module docstring) into token sequences for ``lm``.

    Raises:
        PromptError: unknown spec, missing file, empty corpus, or a position selector that needs
            chat prompts used on plain text.
    """
    pos = Positions.parse(positions) if isinstance(positions, str) else positions
    kind, _, arg = spec.partition(":")
    seqs: list[TokenSeq] = []
    if kind == "organism":
        from safetyscope.organism.dataset import build_corpus

        n = int(arg) if arg else 2000
        corpus = build_corpus(seed=seed, n_train=max(n, 4))
        eos = lm.tokenizer.eos_token_id
        for ex in corpus.all_train()[:n] if n >= len(corpus.all_train()) else _spread(corpus.all_train(), n):
            resp = lm.tokenizer(ex.response, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
            seqs.append(_chat_seq(lm, ex.instruction, pos, list(resp), skip_bos, max_len))
    elif kind in ("bundled", "prompts"):
        from safetyscope.data.bundled import load_bundled
        from safetyscope.data.prompts import load_prompts

        prompts = ([*load_bundled("harmful").prompts, *load_bundled("harmless").prompts] if kind == "bundled"
                   else list(load_prompts(Path(arg)).prompts))
        seqs = [_chat_seq(lm, p, pos, [], skip_bos, max_len) for p in prompts]
    elif kind == "text" and arg:
        if pos.kind != "all":
            raise PromptError(f"Positions {pos.key!r} need chat prompts; plain text reads every token (positions all).")
        for doc in _text_docs(Path(arg)):
            ids = list(lm.tokenizer(doc)["input_ids"])[:max_len]
            seqs.append(TokenSeq(tuple(ids), tuple(_all(ids, lm, skip_bos))))
    elif kind == "generate":
        seqs = _generated(lm, int(arg) if arg else 64, pos, skip_bos, max_len, seed)
    else:
        raise PromptError(f"Unknown corpus {spec!r}; use organism[:N], bundled, prompts:PATH, text:PATH "
                          "(.txt or .jsonl) or generate[:N].")
    seqs = [s for s in seqs if s.positions]
    if not seqs:
        raise PromptError(f"Corpus {spec!r} selects no token positions.")
    return TokenCorpus(spec, seqs)


def _spread(items: list, n: int) -> list:  # type: ignore[type-arg]
    """``n`` items evenly spread over ``items`` (every kind of example is represented)."""
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _generated(lm: LoadedModel, n: int, pos: Positions, skip_bos: bool, max_len: int, seed: int) -> list[TokenSeq]:
    from safetyscope.data.bundled import load_bundled
    from safetyscope.evaluation.generate import generate_ids

    pool = list(load_bundled("harmless").prompts)
    prompts = [pool[i % len(pool)] for i in range(n)]
    new = generate_ids(lm, prompts, max_new_tokens=max(8, max_len // 2), do_sample=True, temperature=1.0,
                       seed=seed, progress=False, batch_size=16)
    return [_chat_seq(lm, p, pos, list(c), skip_bos, max_len) for p, c in zip(prompts, new, strict=True)]
