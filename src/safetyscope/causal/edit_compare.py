"""Compare weight-edited models against their source: the orthogonalization variants table.

Every edited model (single-direction, projected, biprojected, Gabliteration, component-targeted,
and a random-subspace control of the same rank) is an :class:`~safetyscope.causal.arms.Arm` on its
own model; :func:`~safetyscope.causal.arms.run_arms` generates, judges and measures them beside
the baseline. Per model the table holds:

* **harmful refusal** and **harmless refusal** — judged rates with 95% Wilson intervals;
* **first-token KL** on harmless prompts (``KL(P_source ‖ P_edited)`` at the first answer token);
* **answer perplexity** — ``exp(mean NLL)`` of the source model's own greedy harmless answers
  under the edited model (teacher forced after the chat-formatted prompt), with a 95% interval
  from the per-answer mean NLL (normal approximation; the source's value is its own).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from safetyscope.batching import run_batched
from safetyscope.causal.arms import Arm, BaselineCache, run_arms
from safetyscope.evaluation.logits import forward_logits, nll_rows
from safetyscope.evaluation.metrics import Rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel


@dataclass
class EditRow:
    """One model of the table."""

    name: str
    harmful_refusal: Rate
    harmless_refusal: Rate
    kl_first_token: float | None
    perplexity: float
    perplexity_ci: tuple[float, float]
    incoherent_harmless: Rate
    n_directions: int | None = None
    samples: list[tuple[str, str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        for key in ("harmful_refusal", "harmless_refusal", "incoherent_harmless"):
            d[key] = getattr(self, key).to_dict()
        return d


@dataclass
class EditComparison:
    """The variants table with provenance."""

    rows: list[EditRow]
    provenance: dict[str, Any] = field(default_factory=dict)

    def row(self, name: str) -> EditRow:
        """The row called ``name``."""
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"rows": [r.to_dict() for r in self.rows], "provenance": self.provenance}

    def table(self) -> str:
        """Plain-text table."""

        def rate(r: Rate) -> str:
            return f"{r.rate:.2f} [{r.ci_low:.2f},{r.ci_high:.2f}]" if r.rate is not None else "-"

        head = f"{'model':28} {'k':>3} {'harmful refusal':>18} {'harmless refusal':>18} {'KL1':>7} {'ppl [95% CI]':>22}"
        lines = [head]
        for r in self.rows:
            kl = "-" if r.kl_first_token is None else f"{r.kl_first_token:.3f}"
            k = "-" if r.n_directions is None else str(r.n_directions)
            lines.append(
                f"{r.name[:28]:28} {k:>3} {rate(r.harmful_refusal):>18} {rate(r.harmless_refusal):>18} "
                f"{kl:>7} {r.perplexity:8.3f} [{r.perplexity_ci[0]:.2f},{r.perplexity_ci[1]:.2f}]"
            )
        return "\n".join(lines)


def answer_nll(
    lm: LoadedModel, prompts: Sequence[str], answers: Sequence[Sequence[int]], batch_size: int = 16
) -> list[float]:
    """Mean NLL per answer token of each ``answers[i]`` after chat-formatted ``prompts[i]`` (NaN if empty)."""
    seqs = [list(lm.chat.encode(p).input_ids) + list(a) for p, a in zip(prompts, answers, strict=True)]
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0

    def run(idx: list[int]) -> list[float]:
        import torch

        with torch.inference_mode():
            logits = forward_logits(lm.model, [seqs[i] for i in idx], pad)
        out = []
        width = logits.shape[1]
        for row, i in enumerate(idx):
            n = len(answers[i])
            if n == 0:
                out.append(float("nan"))
                continue
            start = width - n - 1  # the logit at the last prompt token predicts the first answer token
            targets = torch.tensor(list(answers[i]))
            out.append(float(nll_rows(logits[row, start : start + n].float(), targets).mean()))
        return out

    return run_batched([len(s) for s in seqs], batch_size, run, progress=False)


def _ppl(nlls: Sequence[float]) -> tuple[float, tuple[float, float]]:
    vals = [x for x in nlls if x == x]
    if not vals:
        return float("nan"), (float("nan"), float("nan"))
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((x - mean) ** 2 for x in vals) / max(1, len(vals) - 1))
    half = 1.96 * sd / math.sqrt(len(vals))
    return math.exp(mean), (math.exp(mean - half), math.exp(mean + half))


def compare_edits(
    reference: LoadedModel,
    edited: Mapping[str, LoadedModel | Callable[[], LoadedModel]],
    harmful: Sequence[str],
    harmless: Sequence[str],
    judge: Judge,
    *,
    n_directions: Mapping[str, int] | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    baseline: BaselineCache | None = None,
) -> EditComparison:
    """The variants table of ``edited`` models against ``reference`` (module docstring).

    A value of ``edited`` may be a zero-argument builder: that model is then built, measured and
    released before the next one, so only one edited copy is in memory at a time. ``baseline``
    shares the source's greedy completions with other experiments (generated once).
    """
    cache = baseline if baseline is not None else BaselineCache()
    sets = {"harmful": harmful, "harmless": harmless}
    answers = cache.ids(reference, list(harmless), max_new_tokens, batch_size)
    kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "baseline": cache}
    rows = []
    provenance: dict[str, Any] = {}
    for name, item in [("baseline", reference), *edited.items()]:
        lm = item if isinstance(item, LoadedModel) else item()
        report = run_arms(reference, [Arm(name, lm)], sets, judge, intervention="weights", **kw)
        res = report.arms[name]
        ppl, ci = _ppl(answer_nll(lm, harmless, answers))
        rows.append(
            EditRow(
                name,
                res.refusal["harmful"],
                res.refusal["harmless"],
                None if lm is reference else res.kl_first_token,
                ppl,
                ci,
                res.incoherent["harmless"],
                (n_directions or {}).get(name),
                res.samples.get("harmful", []),
            )
        )
        provenance = report.provenance
        del lm, report
        gc.collect()
    return EditComparison(rows, provenance | {"max_new_tokens": max_new_tokens})


def components_from_patching(result: Any, top: int) -> list[str]:
    """The ``top`` attention, head and MLP writers of a patching result by |recovery| (or |value|
    when no recovery), as circuit node names (``a3``, ``a3.h1``, ``m4``) for component-targeted edits."""
    from safetyscope.errors import SafetyscopeError

    names = {"attn_out": "a{layer}", "mlp_out": "m{layer}", "heads": "a{layer}.h{head}"}
    best: dict[str, float] = {}
    for s in result.scores:
        if s.component not in names:
            continue
        v = s.recovery if s.recovery is not None else s.value
        if v is None or v != v:
            continue
        name = names[s.component].format(layer=s.layer, head=s.head)
        best[name] = max(best.get(name, 0.0), abs(float(v)))
    if not best:
        raise SafetyscopeError(
            "The patching result has no attn_out, mlp_out or heads scores to choose components from; "
            "run `patch` with --components attn_out,mlp_out (or heads)."
        )
    return sorted(best, key=lambda n: -best[n])[:top]
