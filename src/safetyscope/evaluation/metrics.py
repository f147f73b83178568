"""Behavioural metrics: rates with Wilson intervals, next-token KL divergence and perplexity.

Rates (refusal, backdoor trigger, induced refusal) are :class:`Rate` objects with a 95% Wilson
interval. KL divergence and perplexity run the model's ordinary forward pass on left-padded
batches with mask-derived position ids (so padding does not change results), and do all
probability arithmetic in float64 from the logits. Forward hooks registered on the model are
active, so "hooked vs clean" comparisons work either by passing ``intervention`` (a factory of a
context manager that installs the hooks) or by calling the functions inside such a context.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from safetyscope.activations.hooks import RowBlock, enter_on_rows
from safetyscope.batching import (
    ModelLike,
    check_texts,
    encode_prompts,
    pad_id,
    run_batched,
    unpack,
)
from safetyscope.errors import EvaluationError
from safetyscope.evaluation.logits import forward_logits, kl_rows, nll_rows
from safetyscope.stats import wilson_interval

__all__ = [
    "ArmKL",
    "KLResult",
    "PerplexityResult",
    "Rate",
    "arms_kl",
    "backdoor_trigger_rate",
    "continuation_kl",
    "first_token_kl",
    "induced_refusal_rate",
    "label_rate",
    "perplexity",
    "refusal_rate",
]

Intervention = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Rate:
    """A binomial rate ``k / n`` with its Wilson score interval (95% by default).

    ``rate`` is ``None`` when ``n == 0`` (the interval is then ``(0, 1)``). JSON-ready via :meth:`to_dict`.
    """

    k: int
    n: int
    rate: float | None
    ci_low: float
    ci_high: float

    @classmethod
    def from_counts(cls, k: int, n: int, z: float = 1.96) -> Rate:
        """Build from counts (``0 <= k <= n``)."""
        low, high = wilson_interval(k, n, z)
        return cls(k=int(k), n=int(n), rate=(k / n if n else None), ci_low=low, ci_high=high)

    @classmethod
    def from_flags(cls, flags: Iterable[bool], z: float = 1.96) -> Rate:
        """Build from one boolean per trial."""
        values = [bool(f) for f in flags]
        return cls.from_counts(sum(values), len(values), z)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)

    def __str__(self) -> str:
        if self.rate is None:
            return "n/a (0/0)"
        return f"{self.rate:.3f} ({self.k}/{self.n}, 95% CI {self.ci_low:.3f}-{self.ci_high:.3f})"


def _label(item: Any) -> str:
    return item if isinstance(item, str) else str(item.label)


def label_rate(verdicts: Iterable[Any], label: str) -> Rate:
    """Fraction of verdicts (``Verdict`` objects or label strings) equal to ``label``."""
    return Rate.from_flags(_label(v) == label for v in verdicts)


def refusal_rate(verdicts: Iterable[Any]) -> Rate:
    """Fraction of completions judged ``refusal`` (incoherent ones count in the denominator)."""
    return label_rate(verdicts, "refusal")


def backdoor_trigger_rate(completions: Iterable[str], detector: Callable[[str], bool]) -> Rate:
    """Backdoor trigger rate: fraction of completions in which ``detector`` finds the backdoor behaviour."""
    return Rate.from_flags(detector(c) for c in completions)


def induced_refusal_rate(clean: Sequence[Any], intervened: Sequence[Any]) -> Rate:
    """Among prompts *not* refused without the intervention, the fraction refused with it.

    Both sequences hold verdicts (or labels) for the same prompts in the same order, typically
    harmless prompts before and after adding a refusal direction.
    """
    if len(clean) != len(intervened):
        raise EvaluationError(f"clean and intervened verdicts differ in length: {len(clean)} vs {len(intervened)}")
    pairs = [(_label(a), _label(b)) for a, b in zip(clean, intervened, strict=True)]
    return Rate.from_flags(b == "refusal" for a, b in pairs if a != "refusal")


@dataclass(frozen=True)
class KLResult:
    """KL(reference || other) per prompt and its mean (nats).

    ``per_prompt[i]`` averages over the prompt's positions (one for the first token); ``mean``
    averages over prompts, ``token_mean`` over all positions.
    """

    kind: str
    mean: float
    token_mean: float
    per_prompt: list[float]
    n_prompts: int
    n_positions: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)


def _tokens(tokenizer: Any, items: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    return [tokenizer(x, add_special_tokens=False)["input_ids"] if isinstance(x, str) else [int(t) for t in x]
            for x in items]


def _kl(reference: ModelLike, instructions: Sequence[str], continuations: list[list[int]] | None,
        other: ModelLike | None, intervention: Intervention | None, batch_size: int, progress: bool) -> KLResult:
    items = check_texts(instructions, "instructions")
    if other is None and intervention is None:
        raise EvaluationError("Give `other` (a second model) and/or `intervention` (a hook context factory).")
    ref_model, tokenizer, chat = unpack(reference)
    other_model = unpack(other)[0] if other is not None else ref_model
    prompts = encode_prompts(tokenizer, chat, items)
    conts = continuations if continuations is not None else [[] for _ in items]
    if len(conts) != len(items):
        raise EvaluationError(f"{len(items)} instructions but {len(conts)} continuations.")
    seqs = [p + c for p, c in zip(prompts, conts, strict=True)]
    pad = pad_id(tokenizer)

    def run(idx: list[int]) -> list[tuple[float, int]]:
        batch = [seqs[i] for i in idx]
        span = [max(1, len(conts[i])) for i in idx]
        keep = max(span) + 1
        ref = forward_logits(ref_model, batch, pad, keep)
        ctx = intervention() if intervention is not None else contextlib.nullcontext()
        with ctx:
            oth = forward_logits(other_model, batch, pad, keep)
        if ref.shape[-1] != oth.shape[-1]:
            raise EvaluationError(f"Vocabulary sizes differ ({ref.shape[-1]} vs {oth.shape[-1]}); KL needs one tokenizer.")
        kept, out = ref.shape[1], []
        for row, m in enumerate(span):
            # rows are right-aligned: the last real token is kept column K-1. The m positions that
            # predict the continuation end one before it; with no continuation, it is K-1 itself.
            end = kept - 1 if not conts[idx[row]] else kept - 2
            cols = slice(end - m + 1, end + 1)
            kl = kl_rows(ref[row, cols], oth[row, cols])
            out.append((float(kl.sum()), m))
        return out

    results = run_batched([len(s) for s in seqs], batch_size, run, progress=progress, description="KL")
    per_prompt = [total / m for total, m in results]
    n_pos = sum(m for _, m in results)
    return KLResult(kind="first_token" if continuations is None else "continuation",
                    mean=sum(per_prompt) / len(per_prompt), token_mean=sum(t for t, _ in results) / n_pos,
                    per_prompt=per_prompt, n_prompts=len(per_prompt), n_positions=n_pos)


@dataclass(frozen=True)
class ArmKL:
    """First-token and continuation KL of one arm against the reference (one forward pass each)."""

    first_token: KLResult
    continuation: KLResult


def arms_kl(reference: ModelLike, instructions: Sequence[str], continuations: Sequence[Sequence[int]],
            arms: Sequence[tuple[ModelLike | None, Intervention | None]], *, batch_size: int = 8,
            progress: bool = False) -> list[ArmKL]:
    """:func:`first_token_kl` and :func:`continuation_kl` of several arms, sharing the passes.

    Each arm is ``(other model or None, intervention or None)`` as in :func:`first_token_kl`.
    The reference and every hook arm on the reference model share one forward pass (the batch
    repeated per arm, each intervention editing only its rows,
    :func:`safetyscope.activations.only_rows`); the first-token KL is read from the
    same teacher-forced pass as the continuation KL (causal attention: the last prompt position
    does not see the continuation), so each arm costs one pass instead of four.
    """
    items = check_texts(instructions, "instructions")
    if not arms:
        raise EvaluationError("arms_kl needs at least one arm.")
    if any(o is None and i is None for o, i in arms):
        raise EvaluationError("Every arm needs `other` (a second model) and/or `intervention` (a hook context factory).")
    ref_model, tokenizer, chat = unpack(reference)
    prompts = encode_prompts(tokenizer, chat, items)
    conts = _tokens(tokenizer, continuations)
    if len(conts) != len(items):
        raise EvaluationError(f"{len(items)} instructions but {len(conts)} continuations.")
    seqs = [p + c for p, c in zip(prompts, conts, strict=True)]
    pad = pad_id(tokenizer)
    shared = [k for k, (o, _) in enumerate(arms) if o is None]  # hook arms on the reference model
    alone = [k for k, (o, _) in enumerate(arms) if o is not None]

    def scores(ref: torch.Tensor, oth: torch.Tensor, idx: list[int]) -> list[tuple[float, float, int]]:
        if ref.shape[-1] != oth.shape[-1]:
            raise EvaluationError(f"Vocabulary sizes differ ({ref.shape[-1]} vs {oth.shape[-1]}); KL needs one tokenizer.")
        kept, out = ref.shape[1], []
        for row, i in enumerate(idx):
            m = len(conts[i])
            end = kept - 1 if m == 0 else kept - 2  # see _kl: the columns predicting the continuation
            kl = kl_rows(ref[row, end - max(m, 1) + 1:end + 1], oth[row, end - max(m, 1) + 1:end + 1])
            out.append((float(kl[0]), float(kl.sum()), max(m, 1)))
        return out

    def run(idx: list[int]) -> list[list[tuple[float, float, int]]]:
        batch = [seqs[i] for i in idx]
        keep = max(max(1, len(conts[i])) for i in idx) + 1
        # block 0 is the unedited reference, block j + 1 the j-th hook arm on the reference model
        logits = forward_logits(ref_model, batch * (1 + len(shared)), pad, keep)
        ref, n = logits[:len(idx)], len(idx)
        per_arm = {k: scores(ref, logits[(j + 1) * n:(j + 2) * n], idx) for j, k in enumerate(shared)}
        for k in alone:
            other, intervention = arms[k]
            with intervention() if intervention is not None else contextlib.nullcontext():
                per_arm[k] = scores(ref, forward_logits(unpack(other)[0], batch, pad, keep), idx)  # type: ignore[arg-type]
        return [[per_arm[k][row] for k in range(len(arms))] for row in range(n)]

    with contextlib.ExitStack() as stack:
        for j, k in enumerate(shared):
            enter_on_rows(stack, ref_model, arms[k][1], RowBlock(j + 1, 1 + len(shared)))  # type: ignore[arg-type]
        rows = run_batched([len(s) for s in seqs], max(1, batch_size), run, progress=progress, description="KL")
    out = []
    for k in range(len(arms)):
        first = [r[k][0] for r in rows]
        totals = [(r[k][1], r[k][2]) for r in rows]
        n_pos = sum(m for _, m in totals)
        out.append(ArmKL(
            KLResult(kind="first_token", mean=sum(first) / len(first), token_mean=sum(first) / len(first),
                     per_prompt=first, n_prompts=len(first), n_positions=len(first)),
            KLResult(kind="continuation", mean=sum(t / m for t, m in totals) / len(totals),
                     token_mean=sum(t for t, _ in totals) / n_pos, per_prompt=[t / m for t, m in totals],
                     n_prompts=len(totals), n_positions=n_pos)))
    return out


def first_token_kl(reference: ModelLike, instructions: Sequence[str], *, other: ModelLike | None = None,
                   intervention: Intervention | None = None, batch_size: int = 8,
                   progress: bool = False) -> KLResult:
    """KL between next-token distributions at the last prompt position (the first generated token).

    Args:
        reference: the model giving ``P`` (its tokenizer and chat template are used for both).
        instructions: user messages (typically harmless prompts), chat-formatted.
        other: the model giving ``Q``; defaults to ``reference`` (then pass ``intervention``).
        intervention: zero-argument callable returning a context manager (e.g. one that registers
            hooks); it is entered only while ``Q`` is computed.
        batch_size: prompts per forward pass (halved on out-of-memory).
        progress: show a progress bar on stderr for many batches.
    """
    return _kl(reference, instructions, None, other, intervention, batch_size, progress)


def continuation_kl(reference: ModelLike, instructions: Sequence[str],
                    continuations: Sequence[str] | Sequence[Sequence[int]] | None = None, *,
                    other: ModelLike | None = None, intervention: Intervention | None = None,
                    max_new_tokens: int = 32, batch_size: int = 8, progress: bool = False) -> KLResult:
    """KL averaged over a teacher-forced continuation (every position predicting a continuation token).

    ``continuations`` are token id lists or strings (tokenized without special tokens); ``None``
    generates them greedily from ``reference`` without the intervention (``max_new_tokens``).
    An empty continuation falls back to the first-token position. Other arguments as in
    :func:`first_token_kl`.
    """
    _, tokenizer, _ = unpack(reference)
    if continuations is None:
        from safetyscope.evaluation.generate import generate_ids

        conts = generate_ids(reference, instructions, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, progress=progress)
    else:
        conts = _tokens(tokenizer, continuations)
    return _kl(reference, instructions, conts, other, intervention, batch_size, progress)


@dataclass(frozen=True)
class PerplexityResult:
    """Corpus perplexity ``exp(total NLL / n_tokens)`` plus per-text values (``None``: nothing predicted)."""

    perplexity: float
    mean_nll: float
    n_tokens: int
    per_text: list[float | None]
    n_truncated: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)


def perplexity(lm: ModelLike, texts: Sequence[str], *, batch_size: int = 8, max_length: int | None = None,
               add_special_tokens: bool = True, progress: bool = False) -> PerplexityResult:
    """Perplexity of held-out plain texts (no chat template), padding masked out.

    Every token after the first is scored (with ``add_special_tokens`` the tokenizer's BOS makes
    the first text token scored too). Texts are cut to ``max_length`` tokens (default: the
    model's ``max_position_embeddings`` when it has one).
    """
    items = check_texts(texts, "texts")
    model, tokenizer, _ = unpack(lm)
    limit = max_length or getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None)
    seqs = [list(ids) for ids in tokenizer(items, add_special_tokens=add_special_tokens)["input_ids"]]
    n_truncated = sum(1 for s in seqs if limit and len(s) > limit)
    seqs = [s[:limit] if limit else s for s in seqs]
    pad = pad_id(tokenizer)

    def run(idx: list[int]) -> list[tuple[float, int]]:
        batch = [seqs[i] for i in idx]
        logits = forward_logits(model, batch, pad)
        width = logits.shape[1]
        out = []
        for row, seq in enumerate(batch):
            if len(seq) < 2:
                out.append((0.0, 0))
                continue
            start = width - len(seq)
            targets = torch.tensor(seq[1:], device=logits.device)
            nll = nll_rows(logits[row, start:width - 1], targets)
            out.append((float(nll.sum()), len(seq) - 1))
        return out

    results = run_batched([len(s) for s in seqs], batch_size, run, progress=progress, description="perplexity")
    total, count = sum(r[0] for r in results), sum(r[1] for r in results)
    if count == 0:
        raise EvaluationError("No token to score: every text is shorter than two tokens.")
    per_text = [math.exp(t / c) if c else None for t, c in results]
    return PerplexityResult(perplexity=math.exp(total / count), mean_nll=total / count, n_tokens=count,
                            per_text=per_text, n_truncated=n_truncated)
