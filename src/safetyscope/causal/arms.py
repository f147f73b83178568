"""Turn a direction into a causal claim: evaluate an intervention against baseline and control arms.

Each *arm* is a model plus an optional intervention context (hooks). For every arm and prompt
set, completions are generated greedily (stopping at EOS), labelled by a judge, and summarised
as refusal and incoherence rates with 95% Wilson intervals; on the harmless set the first-token
and continuation KL to the baseline model are measured too (the continuation is the baseline's
own greedy completion). :func:`direction_arms` builds the standard triple: baseline, the
intervention with the direction, and the same intervention with a random direction of equal
norm (the control, :func:`safetyscope.causal.controls.random_like`).

Baseline completions are generated once per (model, prompts, budget) through a
:class:`BaselineCache` shared by every experiment of a session (the audit passes one), so the
baseline is never generated twice: not per intervention, not again for the continuation KL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.hooks import routes_by_rows
from safetyscope.causal.controls import random_like
from safetyscope.evaluation.generate import generate_ids, generate_ids_under
from safetyscope.evaluation.metrics import Rate, arms_kl, label_rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel

ContextFactory = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class Arm:
    """One condition of an experiment: a model and the hooks active while it runs."""

    name: str
    lm: LoadedModel
    context: ContextFactory = contextlib.nullcontext

    @property
    def is_baseline(self) -> bool:
        """No hooks and no other model: the reference itself."""
        return self.context is contextlib.nullcontext


@dataclass
class BaselineCache:
    """Greedy completions (token ids) of un-intervened models, memoised by (model, prompts, budget)."""

    store: dict[tuple[str, tuple[str, ...], int], list[list[int]]] = field(default_factory=dict)
    generated: int = 0  # prompts actually generated (the rest were served from the cache)

    def ids(self, lm: LoadedModel, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 32) -> list[list[int]]:
        """The baseline's new token ids for each prompt (generated on first request)."""
        key = (lm.fingerprint(), tuple(prompts), max_new_tokens)
        if key not in self.store:
            self.store[key] = generate_ids(lm, list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size,
                                           progress=False)
            self.generated += len(prompts)
        return self.store[key]

    def texts(self, lm: LoadedModel, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 32) -> list[str]:
        """The baseline completions, decoded as :func:`safetyscope.evaluation.generate` does."""
        return decode(lm, self.ids(lm, prompts, max_new_tokens, batch_size))


def decode(lm: LoadedModel, ids: list[list[int]]) -> list[str]:
    """Token ids to completion text (special tokens removed, whitespace stripped)."""
    return [lm.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]


@dataclass
class ArmResult:
    """Behaviour of one arm on each prompt set."""

    refusal: dict[str, Rate]
    incoherent: dict[str, Rate]
    samples: dict[str, list[tuple[str, str, str]]]
    kl_first_token: float | None = None
    kl_continuation: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "refusal": {k: v.to_dict() for k, v in self.refusal.items()},
            "incoherent": {k: v.to_dict() for k, v in self.incoherent.items()},
            "kl_first_token": self.kl_first_token, "kl_continuation": self.kl_continuation,
            "samples": {k: [list(s) for s in v] for k, v in self.samples.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmResult:
        """Inverse of :meth:`to_dict`."""
        return cls({k: Rate(**v) for k, v in data["refusal"].items()},
                   {k: Rate(**v) for k, v in data["incoherent"].items()},
                   {k: [tuple(s) for s in v] for k, v in data.get("samples", {}).items()},  # type: ignore[misc]
                   data.get("kl_first_token"), data.get("kl_continuation"))


@dataclass
class InterventionReport:
    """Arms × prompt sets, with the parameters and provenance of the experiment."""

    intervention: str
    params: dict[str, Any]
    arms: dict[str, ArmResult]
    provenance: dict[str, Any] = field(default_factory=dict)

    def rate(self, arm: str, prompt_set: str) -> float:
        """Refusal rate of ``arm`` on ``prompt_set``."""
        return self.arms[arm].refusal[prompt_set].rate

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"intervention": self.intervention, "params": self.params,
                "arms": {k: v.to_dict() for k, v in self.arms.items()}, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InterventionReport:
        """Inverse of :meth:`to_dict`."""
        return cls(data["intervention"], dict(data.get("params", {})),
                   {k: ArmResult.from_dict(v) for k, v in data["arms"].items()}, dict(data.get("provenance", {})))


def direction_arms(lm: LoadedModel, make: Callable[[Tensor], contextlib.AbstractContextManager[Any]],
                   direction: Tensor, seed: int = 0) -> list[Arm]:
    """Baseline, intervention and random-direction control arms for a hook intervention ``make(v)``."""
    control = random_like(direction, seed)
    return [Arm("baseline", lm), Arm("intervened", lm, lambda: make(direction)),
            Arm("control", lm, lambda: make(control))]


def run_arms(reference: LoadedModel, arms: Sequence[Arm], prompt_sets: dict[str, Sequence[str]], judge: Judge,
             *, intervention: str, params: dict[str, Any] | None = None, kl_set: str | None = "harmless",
             max_new_tokens: int = 32, batch_size: int = 32, n_samples: int = 3,
             baseline: BaselineCache | None = None) -> InterventionReport:
    """Generate, judge and measure every arm on every prompt set (see module docstring).

    Hook arms on ``reference`` whose interventions are built on
    :func:`~safetyscope.activations.edit` generate together, one batch repeated per arm
    (:func:`~safetyscope.evaluation.generate.generate_ids_under`), and their KLs share one
    reference pass (:func:`~safetyscope.evaluation.metrics.arms_kl`). Arms on other models, and
    arms whose context registers its own hooks or changes weights
    (:func:`~safetyscope.activations.routes_by_rows` is false), run on their own.
    """
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names repeat: {names}")
    cache = baseline if baseline is not None else BaselineCache()
    on_ref = [arm for arm in arms if arm.lm is reference and not arm.is_baseline]
    hooked = [arm for arm in on_ref if routes_by_rows(reference.model, arm.context)]
    solo = {arm.name for arm in on_ref if arm not in hooked}  # hook arms that cannot share a batch
    completions: dict[tuple[str, str], list[str]] = {}
    for set_name, prompts in prompt_sets.items():
        if hooked:
            ids = generate_ids_under(reference, list(prompts), [arm.context for arm in hooked],
                                     max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False)
            for arm, rows in zip(hooked, ids, strict=True):
                completions[arm.name, set_name] = decode(reference, rows)
        for arm in arms:
            if arm.is_baseline:
                completions[arm.name, set_name] = cache.texts(arm.lm, prompts, max_new_tokens, batch_size)
            elif arm.lm is not reference or arm.name in solo:
                with arm.context():
                    rows = generate_ids(arm.lm, list(prompts), max_new_tokens=max_new_tokens,
                                        batch_size=batch_size, progress=False)
                completions[arm.name, set_name] = decode(arm.lm, rows)
    results: dict[str, ArmResult] = {}
    for arm in arms:
        refusal, incoherent, samples = {}, {}, {}
        for set_name, prompts in prompt_sets.items():
            texts = completions[arm.name, set_name]
            verdicts = judge.label_many(zip(prompts, texts, strict=True))
            refusal[set_name] = label_rate(verdicts, "refusal")
            incoherent[set_name] = label_rate(verdicts, "incoherent")
            samples[set_name] = [(p, c, v.label) for p, c, v in zip(prompts, texts, verdicts, strict=True)][:n_samples]
        results[arm.name] = ArmResult(refusal, incoherent, samples)
    measured = [arm for arm in arms if arm.lm is not reference or not arm.is_baseline]
    if kl_set is not None and kl_set in prompt_sets and measured:
        kl_prompts = list(prompt_sets[kl_set])
        conts = cache.ids(reference, kl_prompts, max_new_tokens, batch_size)
        shared = [arm for arm in measured if arm.name not in solo]
        kls = dict(zip([arm.name for arm in shared], arms_kl(
            reference, kl_prompts, conts, [(None if arm.lm is reference else arm.lm, None if arm.is_baseline
                                            else arm.context) for arm in shared], batch_size=batch_size)
            if shared else [], strict=True))
        for arm in measured:  # a pass of their own (``other`` = the reference), outside the shared hooks
            if arm.name in solo:
                kls[arm.name] = arms_kl(reference, kl_prompts, conts, [(reference, arm.context)], batch_size=batch_size)[0]
        for arm in measured:
            kl = kls[arm.name]
            results[arm.name].kl_first_token = kl.first_token.mean
            results[arm.name].kl_continuation = kl.continuation.mean
    provenance = {"model": reference.spec, "model_fingerprint": reference.fingerprint(), "judge": judge.name,
                  "n_prompts": {k: len(v) for k, v in prompt_sets.items()}, "max_new_tokens": max_new_tokens,
                  "safetyscope_version": __version__}
    return InterventionReport(intervention, params or {}, results, provenance)
