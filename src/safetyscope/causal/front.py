"""Worst-case robustness front: how little damage it takes to remove refusal, searched with Optuna.

Each trial is an orthogonalization applied as hooks (:func:`~safetyscope.interventions.kernel.kernel_ablate`,
no model copy) with parameters in heretic's space:

* ``direction_index`` ∈ [1, L−1], fractional: the direction is the unit interpolation of the
  candidate directions (difference in means of ``resid_pre`` at the last end-of-instruction
  token) of the two neighbouring layers, ``normalize((1−t)·r_⌊i⌋ + t·r_⌈i⌉)``. Layer 0 is left
  out: its ``resid_pre`` is the embedding of the same template token for every prompt;
* per component (attention, MLP) a :func:`~safetyscope.interventions.kernel.linear_kernel`:
  ``max_weight`` ∈ [0, 1.5], ``peak`` ∈ [0, L−1], ``min_weight = min_frac · max_weight`` and
  ``distance`` ∈ [1, L].

Two objectives, both minimised, scored without generation in one forward pass per trial:
harmful refusal (share of held-out harmful prompts whose refusal log-odds score
``log P_R − log(1 − P_R)`` is positive, or with ``objective="prob"`` the mean ``P_R``) and the
harmless first-token KL(clean ‖ edited) in nats. Optuna's multi-objective sampler (TPE or
NSGA-II) proposes; the study lives in a journal file, so a run resumes where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.logits import kl_rows
from safetyscope.evaluation.refusal_score import (
    last_token_logits,
    last_token_logits_under,
    refusal_scores_from_logits,
)
from safetyscope.interventions.kernel import kernel_ablate, linear_kernel
from safetyscope.model.loading import LoadedModel

SAMPLERS = ("tpe", "nsga2")
OBJECTIVES = ("share", "prob")
MAX_WEIGHT = 1.5


class FrontError(SafetyscopeError):
    """A robustness-front search that cannot run (missing optuna, a study of another setup)."""


@dataclass(frozen=True)
class KernelParams:
    """A linear kernel: ``max_weight`` at ``peak``, ``min_weight`` at ``distance`` layers away, 0 beyond."""

    max_weight: float
    peak: float
    min_weight: float
    distance: float

    def weights(self, n_layers: int) -> dict[int, float]:
        """Strength per layer."""
        return linear_kernel(n_layers, self.max_weight, self.peak, self.min_weight, self.distance)


@dataclass(frozen=True)
class FrontParams:
    """One point of the search space."""

    direction_index: float
    attn: KernelParams
    mlp: KernelParams

    @classmethod
    def from_optuna(cls, p: dict[str, float]) -> FrontParams:
        """From a trial's ``params``."""

        def kernel(c: str) -> KernelParams:
            return KernelParams(
                p[f"{c}_max_weight"],
                p[f"{c}_peak"],
                p[f"{c}_min_frac"] * p[f"{c}_max_weight"],
                p[f"{c}_distance"],
            )

        return cls(p["direction_index"], kernel("attn"), kernel("mlp"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontParams:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["direction_index"]), KernelParams(**d["attn"]), KernelParams(**d["mlp"]))


@dataclass
class TrialScore:
    """A scored trial: parameters, both objectives, and whether it is on the Pareto front."""

    number: int
    params: FrontParams
    refusal: float
    kl: float
    refusal_share: float
    refusal_prob: float
    on_front: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return dict(asdict(self), params=self.params.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialScore:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(d, params=FrontParams.from_dict(d["params"])))


def interpolated_direction(candidates: Tensor, index: float) -> Tensor:
    """Unit ``(1−t)·r_⌊i⌋ + t·r_⌈i⌉`` of the unit per-layer candidates (``[L, d]``) at fractional ``index``."""
    n = candidates.shape[0]
    if not 0 <= index <= n - 1:
        raise FrontError(f"direction_index {index} outside [0, {n - 1}].")
    lo = math.floor(index)
    hi = min(lo + 1, n - 1)
    t = index - lo
    pair = candidates[[lo, hi]].double()
    norms = pair.norm(dim=-1)
    if bool((norms[[0, 1] if t > 0 else [0]] < 1e-12).any()):
        raise FrontError(f"The candidate direction at layer {lo if norms[0] < 1e-12 else hi} is zero.")
    units = pair / norms.clamp_min(1e-12).unsqueeze(-1)
    v = (1 - t) * units[0] + t * units[1]
    return (v / v.norm()).float()


def pareto_mask(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which points no other point dominates (both objectives minimised; ties are kept)."""
    out = []
    for i, (a, b) in enumerate(points):
        dominated = any((c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


@dataclass
class FrontObjective:
    """Scores a batch of parameter points: refusal on harmful prompts, first-token KL on harmless ones."""

    lm: LoadedModel
    candidates: Tensor
    harmful: list[str]
    harmless: list[str]
    token_ids: list[int]
    objective: str = "share"
    batch_size: int = 32
    reference: Tensor = field(init=False)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise FrontError(f"objective {self.objective!r}: use one of {OBJECTIVES}.")
        self.reference = last_token_logits(self.lm, self.harmless, self.batch_size)

    def context(self, p: FrontParams) -> Any:
        """The hook intervention of ``p``."""
        n = self.lm.n_layers
        v = interpolated_direction(self.candidates, p.direction_index)
        return lambda: kernel_ablate(self.lm, v, p.attn.weights(n), p.mlp.weights(n))

    def score(self, points: Sequence[FrontParams]) -> list[tuple[float, float, float, float]]:
        """``(refusal objective, KL, share, mean P_R)`` per point, all points in shared forward passes."""
        prompts = self.harmful + self.harmless
        logits = last_token_logits_under(self.lm, prompts, [self.context(p) for p in points], self.batch_size)
        out = []
        nh = len(self.harmful)
        for arm in logits:
            scores = refusal_scores_from_logits(arm[:nh], self.token_ids).double()
            share = float((scores > 0).double().mean())
            prob = float(torch.sigmoid(scores).mean())
            kl = float(kl_rows(self.reference, arm[nh:]).double().mean())
            out.append((share if self.objective == "share" else prob, kl, share, prob))
        return out


def _suggest(trial: Any, n_layers: int) -> FrontParams:
    top = float(n_layers - 1)
    p = {"direction_index": trial.suggest_float("direction_index", min(1.0, top), top)}
    for c in ("attn", "mlp"):
        p[f"{c}_max_weight"] = trial.suggest_float(f"{c}_max_weight", 0.0, MAX_WEIGHT)
        p[f"{c}_peak"] = trial.suggest_float(f"{c}_peak", 0.0, top)
        p[f"{c}_min_frac"] = trial.suggest_float(f"{c}_min_frac", 0.0, 1.0)
        p[f"{c}_distance"] = trial.suggest_float(f"{c}_distance", 1.0, float(n_layers))
    return FrontParams.from_optuna(p)


def open_study(path: Path, name: str, sampler: str, seed: int, setup: dict[str, Any], n_startup: int) -> Any:
    """Create or resume the study in journal file ``path``; a study of another setup is refused."""
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
    except ImportError as exc:
        raise FrontError(
            "The robustness front needs optuna: pip install 'safetyscope[search]' (or optuna)."
        ) from exc
    if sampler not in SAMPLERS:
        raise FrontError(f"sampler {sampler!r}: use one of {SAMPLERS}.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    chosen = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if sampler == "nsga2"
        else optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True)
    )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=["minimize", "minimize"],
        sampler=chosen,
        load_if_exists=True,
    )
    stored = dict(study.user_attrs)
    if stored and stored.get("setup") != setup:
        diff = sorted(
            k
            for k in set(stored.get("setup", {})) | set(setup)
            if stored.get("setup", {}).get(k) != setup.get(k)
        )
        raise FrontError(
            f"The study in {path} was made with another setup (differs in {diff}); use another --out "
            "or --force to start over."
        )
    if not stored:
        study.set_user_attr("setup", setup)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # left running by an interrupted run
    return study


def run_study(
    study: Any, objective: FrontObjective, n_trials: int, *, batch: int = 1, progress: bool = True
) -> list[TrialScore]:
    """Run trials until ``n_trials`` are complete (resuming counts earlier ones); return every complete trial."""
    import optuna

    from safetyscope.batching import progress_bar

    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    todo = max(0, n_trials - done)
    with progress_bar("robustness front", todo, show=progress and todo > 0) as advance:
        while todo > 0:
            trials = [study.ask() for _ in range(min(batch, todo))]
            points = [_suggest(t, objective.lm.n_layers) for t in trials]
            for t, (obj, kl, share, prob) in zip(trials, objective.score(points), strict=True):
                t.set_user_attr("refusal_share", share)
                t.set_user_attr("refusal_prob", prob)
                study.tell(t, [obj, kl])
                advance(1)
            todo -= len(trials)
    return scores_of(study)


def scores_of(study: Any) -> list[TrialScore]:
    """Every complete trial of ``study`` with its front membership."""
    import optuna

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    out = [
        TrialScore(
            t.number,
            FrontParams.from_optuna(t.params),
            float(t.values[0]),
            float(t.values[1]),
            float(t.user_attrs.get("refusal_share", math.nan)),
            float(t.user_attrs.get("refusal_prob", math.nan)),
        )
        for t in trials
    ]
    for s, keep in zip(out, pareto_mask([(s.refusal, s.kl) for s in out]), strict=True):
        s.on_front = keep
    return out
