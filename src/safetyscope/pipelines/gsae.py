"""Steering with a group of SAE latents against single latents and random latents (the GSAE question).

For an SAE at ``site``: rank latents on harmful vs harmless training prompts (mean over the ``eoi``
tokens), measure the concept cone (:func:`safetyscope.sae.concept.concept_cone`), then on held-out
prompts compare three steering vectors of the *same norm* ``α = scale · ||μ_harmful − μ_harmless||``
(the diff-in-means gap at the site):

* ``group``: ``Σ_{k ∈ group} Δf_k w_k`` (the group's contribution to the reconstructed difference);
* ``single``: the decoder row of the strongest latent;
* ``random``: the same weights on ``m`` random other latents (seeded), the control;
* ``direction``: the diff-in-means direction itself (the reference the SAE vectors approximate);

added at every position of the site on harmless prompts (induce refusal), and, as subspaces, the
span of the same decoder rows ablated from every residual write on harmful prompts (remove
refusal). Refusal rates come with Wilson intervals (:func:`safetyscope.causal.run_arms`).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from safetyscope import __version__
from safetyscope.activations import Site, collect
from safetyscope.causal.arms import Arm, ContextFactory, run_arms
from safetyscope.interventions.hooks import ablate, add
from safetyscope.model.loading import LoadedModel
from safetyscope.pipelines.refusal import judge_for, refusal_prompts
from safetyscope.pipelines.sae import prompt_latents
from safetyscope.sae.concept import ConceptCone, concept_cone
from safetyscope.sae.model import SparseAutoencoder


@dataclass
class GroupSteering:
    """The concept cone, the three steering arms' refusal rates (induce and remove) and provenance."""

    cone: ConceptCone
    random_latents: list[int]
    alpha: float
    induce: dict[str, Any]
    remove: dict[str, Any]
    summary: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["cone"] = self.cone.to_dict()
        return d


def _rates(report: Any, set_name: str) -> dict[str, Any]:
    return {arm: report.arms[arm].refusal[set_name].to_dict() for arm in report.arms}


def group_steering(
    lm: LoadedModel,
    sae: SparseAutoencoder,
    site: Site,
    *,
    m: int = 8,
    scale: float = 1.0,
    n_test: int = 50,
    n_train: int = 64,
    seed: int = 0,
    positions: str = "eoi",
    harmful: Path | None = None,
    harmless: Path | None = None,
    max_new_tokens: int = 16,
    judge: str | None = None,
) -> GroupSteering:
    """Concept cone plus group / single / random-latent steering (module docstring)."""
    t0 = time.perf_counter()
    sets = refusal_prompts(lm, harmful, harmless, n_train=n_train, n_val=2, n_test=n_test, seed=seed)
    acts_h = prompt_latents(lm, sae, sets.harmful_train, site, positions)
    acts_b = prompt_latents(lm, sae, sets.harmless_train, site, positions)
    gap = (
        collect(lm, sets.harmful_train, site, positions, "mean", progress=False).mean(site)
        - collect(lm, sets.harmless_train, site, positions, "mean", progress=False).mean(site)
    ).float()
    cone = concept_cone(sae, acts_h, acts_b, m=m, direction=gap, seed=seed)
    w = sae.W_dec.detach().float().cpu()
    others = [k for k in range(w.shape[0]) if k not in cone.group]
    rand = random.Random(seed).sample(others, len(cone.group))
    weights = torch.tensor(cone.weights, dtype=torch.float32)
    alpha = scale * float(gap.norm())

    def scaled(v: torch.Tensor) -> torch.Tensor:
        return v / v.norm().clamp_min(1e-12) * alpha

    vecs = {
        "direction": scaled(gap.cpu()),
        "group": scaled((weights[:, None] * w[cone.group]).sum(0)),
        "single": scaled(w[cone.group[0]]),
        "random": scaled(
            (
                weights[torch.randperm(len(rand), generator=torch.Generator().manual_seed(seed))][:, None]
                * w[rand]
            ).sum(0)
        ),
    }
    spans = {
        "direction": gap.cpu()[None],
        "group": w[cone.group],
        "single": w[cone.group[:1]],
        "random": w[rand],
    }
    verdict = judge_for(lm, judge)

    def adding(v: torch.Tensor) -> ContextFactory:
        return lambda: add(lm, v, sites=[site])

    def ablating(b: torch.Tensor) -> ContextFactory:
        return lambda: ablate(lm, b)

    induce_arms = [Arm("baseline", lm)] + [Arm(k, lm, adding(v)) for k, v in vecs.items()]
    remove_arms = [Arm("baseline", lm)] + [Arm(k, lm, ablating(b)) for k, b in spans.items()]
    params = {"group": cone.group, "random": rand, "alpha": alpha}
    induce = run_arms(
        lm,
        induce_arms,
        {"harmless": sets.harmless_test},
        verdict,
        intervention="sae_group_add",
        kl_set=None,
        max_new_tokens=max_new_tokens,
        params=params,
    )
    remove = run_arms(
        lm,
        remove_arms,
        {"harmful": sets.harmful_test},
        verdict,
        intervention="sae_group_ablate",
        kl_set=None,
        max_new_tokens=max_new_tokens,
        params=params,
    )
    ri, rr = _rates(induce, "harmless"), _rates(remove, "harmful")

    def r(rates: dict[str, Any], arm: str) -> float:
        return float(rates[arm]["rate"] or 0.0)

    summary: dict[str, Any] = {f"induced_{k}": r(ri, k) - r(ri, "baseline") for k in vecs}
    summary.update({f"removed_{k}": r(rr, "baseline") - r(rr, k) for k in spans})
    summary.update(
        induce_rates=ri,
        remove_rates=rr,
        vector_norms={k: float(v.norm()) for k, v in vecs.items()},
        seconds=time.perf_counter() - t0,
    )
    prov = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "site": site.key,
        "positions": positions,
        "prompts": sets.source,
        "n_test": n_test,
        "judge": verdict.name,
        "scale": scale,
        "m": m,
        "seed": seed,
        "sae": dict(sae.cfg.metadata),
        "safetyscope_version": __version__,
    }
    return GroupSteering(cone, rand, alpha, induce.to_dict(), remove.to_dict(), summary, prov)
