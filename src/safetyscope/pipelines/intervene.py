"""Turn a direction into a causal claim: evaluate an intervention against baseline and control arms.

Each *arm* is a model plus an optional intervention context (hooks). For every arm and prompt
set, completions are generated greedily, labelled by a judge, and summarised as refusal and
incoherence rates with 95% Wilson intervals; on the harmless set the first-token and
continuation KL to the baseline model are measured too. :func:`direction_arms` builds the
standard triple: baseline, the intervention with the direction, and the same intervention
with a random direction of equal norm (the control).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import Rate, continuation_kl, first_token_kl, label_rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel

ContextFactory = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class Arm:
    """One condition of an experiment: a model and the hooks active while it runs."""

    name: str
    lm: LoadedModel
    context: ContextFactory = contextlib.nullcontext


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


def random_like(vector: Tensor, seed: int) -> Tensor:
    """A random direction (or subspace, row-wise) with the same norms as ``vector``, seeded."""
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(vector.shape, generator=g, dtype=torch.float32)
    return rand / rand.norm(dim=-1, keepdim=True) * vector.float().norm(dim=-1, keepdim=True)


def direction_arms(lm: LoadedModel, make: Callable[[Tensor], contextlib.AbstractContextManager[Any]],
                   direction: Tensor, seed: int = 0) -> list[Arm]:
    """Baseline, intervention and random-direction control arms for a hook intervention ``make(v)``."""
    control = random_like(direction, seed)
    return [Arm("baseline", lm), Arm("intervened", lm, lambda: make(direction)),
            Arm("control", lm, lambda: make(control))]


def run_arms(reference: LoadedModel, arms: Sequence[Arm], prompt_sets: dict[str, Sequence[str]], judge: Judge,
             *, intervention: str, params: dict[str, Any] | None = None, kl_set: str | None = "harmless",
             max_new_tokens: int = 32, batch_size: int = 32, n_samples: int = 3) -> InterventionReport:
    """Generate, judge and measure every arm on every prompt set (see module docstring)."""
    results: dict[str, ArmResult] = {}
    for arm in arms:
        refusal, incoherent, samples = {}, {}, {}
        for set_name, prompts in prompt_sets.items():
            with arm.context():
                completions = generate(arm.lm, list(prompts), max_new_tokens=max_new_tokens,
                                       batch_size=batch_size, progress=False)
            verdicts = judge.label_many(zip(prompts, completions, strict=True))
            refusal[set_name] = label_rate(verdicts, "refusal")
            incoherent[set_name] = label_rate(verdicts, "incoherent")
            samples[set_name] = [(p, c, v.label) for p, c, v in zip(prompts, completions, verdicts, strict=True)][:n_samples]
        result = ArmResult(refusal, incoherent, samples)
        if kl_set is not None and kl_set in prompt_sets and (arm.lm is not reference or arm.context is not contextlib.nullcontext):
            kl_prompts = list(prompt_sets[kl_set])
            other = arm.lm if arm.lm is not reference else None
            result.kl_first_token = first_token_kl(reference, kl_prompts, other=other, intervention=arm.context,
                                                   batch_size=batch_size).mean
            result.kl_continuation = continuation_kl(reference, kl_prompts, other=other, intervention=arm.context,
                                                     max_new_tokens=max_new_tokens, batch_size=batch_size).mean
        results[arm.name] = result
    provenance = {"model": reference.spec, "model_fingerprint": reference.fingerprint(), "judge": judge.name,
                  "n_prompts": {k: len(v) for k, v in prompt_sets.items()}, "max_new_tokens": max_new_tokens,
                  "safetyscope_version": __version__}
    return InterventionReport(intervention, params or {}, results, provenance)
