"""The robustness matrix of the LAT study: whose refusal direction breaks whose refusal?

For models ``i`` and ``j`` (same width), ``matrix[i][j]`` is the held-out harmful refusal of model
``i`` with model ``j``'s selected refusal direction ablated from every residual write
(:func:`safetyscope.interventions.ablate`), with a Wilson interval. Rows are the ablated model,
columns the direction's source; the diagonal is self-ablation. Beside it, per model:

* ``baseline``: refusal without any edit;
* ``control``: refusal with a random direction of the same norm ablated (the control every
  entry is read against);
* ``spectra``: the SVD spectrum of the paired differences ``harmful_i - harmless_i`` at the
  selected (layer, position) (:func:`~safetyscope.directions.geometry.paired_spectrum`: top-1 and
  top-2 variance shares; the paper reports ~75% top-2 for LAT vs ~44% for the others);
* ``self_ablation``: refusal with the model's own difference-in-means direction of each layer
  (at the selected position) ablated;
* with ``defenses=True`` (:mod:`safetyscope.pipelines.defenses`): ``compliance[i][j]`` (harmful
  compliance in every matrix cell), ``orthogonalized[i]`` (refusal and compliance of the model
  weight-orthogonalized against its own direction, and against a random one; and, under
  ``subspace_ablation``, every candidate direction ablated at once vs a random subspace), and ``health[i]``
  (harmless refusal / compliance and the perplexity of the first model's harmless answers).

Directions come from :func:`safetyscope.pipelines.refusal.select` on each model's train and
validation prompts; claims are on the test split (organisms: held-out combinations).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from safetyscope import __version__
from safetyscope.activations import Positions, Site, collect
from safetyscope.causal.controls import random_like
from safetyscope.causal.selection import SelectionError, candidate_directions
from safetyscope.directions.geometry import paired_spectrum
from safetyscope.errors import OptionError
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import Rate, refusal_rate
from safetyscope.interventions import ablate
from safetyscope.model.loading import LoadedModel, load_model
from safetyscope.pipelines.defenses import (
    health,
    judged_direction,
    outcome,
    subspace_attack,
    weight_attack,
)
from safetyscope.pipelines.refusal import RefusalPrompts, judge_for, refusal_prompts, select

__all__ = ["RobustnessResult", "robustness"]


@dataclass
class RobustnessResult:
    """The matrix (rows: ablated model, cols: direction source), its CIs, controls and spectra."""

    models: list[str]
    matrix: list[list[float | None]]
    ci: list[list[list[float] | None]]
    counts: list[list[list[int] | None]]
    control: list[dict[str, Any]]
    baseline: list[dict[str, Any]]
    spectra: list[dict[str, Any]]
    self_ablation: list[list[dict[str, Any]]]
    directions: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)
    compliance: list[list[dict[str, Any] | None]] = field(default_factory=list)
    orthogonalized: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _refusal(
    lm: LoadedModel, prompts: Sequence[str], max_new_tokens: int, direction: torch.Tensor | None
) -> Rate:
    judge = judge_for(lm)
    if direction is None:
        outs = generate(lm, list(prompts), max_new_tokens=max_new_tokens, progress=False)
    else:
        with ablate(lm, direction.float()):
            outs = generate(lm, list(prompts), max_new_tokens=max_new_tokens, progress=False)
    return refusal_rate(judge.label_many(zip(prompts, outs, strict=True)))


def _spectrum(lm: LoadedModel, p: RefusalPrompts, layer: int, position: int) -> dict[str, Any]:
    n = min(len(p.harmful_train), len(p.harmless_train))
    pos, site = Positions("eoi", index=position), Site(layer)
    a = collect(lm, p.harmful_train[:n], [site], pos, "none", progress=False).per_prompt(site)[:, 0].double()
    b = collect(lm, p.harmless_train[:n], [site], pos, "none", progress=False).per_prompt(site)[:, 0].double()
    s = paired_spectrum(a, b, layer=layer)
    return {
        "layer": layer,
        "position": position,
        "n_pairs": n,
        "top1": s.top1,
        "top2": s.top2,
        "explained_variance": s.explained_variance[:10],
        "cos_mean_diff_top1": s.cos_mean_diff_top1,
    }


def _choose(
    lm: LoadedModel, p: RefusalPrompts, selection: str, tokens: int
) -> tuple[dict[str, Any], torch.Tensor]:
    if selection != "judged":
        try:
            sel, direction = select(lm, p)
        except SelectionError as exc:
            if selection == "score":
                raise
            info, unit = judged_direction(lm, judge_for(lm), p, tokens)
            return info | {"fallback_from": str(exc)}, unit
        b = sel.best
        info = {"layer": b.layer, "position": b.position, "point": b.point, "raw_norm": direction.raw_norm}
        return info | {"selection": "score"}, direction.vector.float()
    return judged_direction(lm, judge_for(lm), p, tokens)


def robustness(
    specs: Sequence[str],
    *,
    n_train: int = 64,
    n_val: int = 32,
    n_test: int = 100,
    max_new_tokens: int | None = None,
    by_layer: bool = True,
    seed: int = 0,
    progress: bool = True,
    defenses: bool = False,
    selection: str = "score",
) -> RobustnessResult:
    """Select each model's direction, then fill the matrix, controls, spectra and self-ablation curves.

    ``defenses``: also the compliance matrix, orthogonalization and harmless health (module docs).
    ``selection``: ``score`` (the bypass / induce / KL rule), ``judged`` (the direction whose
    ablation makes the model comply most on validation prompts,
    :func:`~safetyscope.pipelines.defenses.judged_direction`) or ``auto`` (score, else judged
    when no candidate passes the score rule's filters).
    """
    if not specs:
        raise OptionError("Give at least one model.")
    if selection not in ("score", "judged", "auto"):
        raise OptionError(f"--selection {selection!r} is not one of score, judged, auto.")
    t0 = time.perf_counter()
    lms = [load_model(s) for s in specs]
    prompts, dirs, info, spectra, baseline, control, by_layer_rows = [], [], [], [], [], [], []
    for spec, lm in zip(specs, lms, strict=True):
        p = refusal_prompts(lm, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed)
        tokens = max_new_tokens or (16 if judge_for(lm).name == "organism" else 48)
        chosen, unit = _choose(lm, p, selection, tokens)
        prompts.append(p)
        dirs.append(unit)
        info.append({"model": spec, **chosen, "fingerprint": lm.fingerprint()})
        spectra.append(_spectrum(lm, p, chosen["layer"], chosen["position"]))
        baseline.append(_refusal(lm, p.harmful_test, tokens, None).to_dict())
        control.append(_refusal(lm, p.harmful_test, tokens, random_like(unit, seed)).to_dict())
        rows = []
        if by_layer:
            cands = candidate_directions(lm, p.harmful_train, p.harmless_train, list(range(lm.n_layers)))
            for layer in range(lm.n_layers):
                vec = cands[(layer, chosen["position"])]
                if (
                    not float(vec.norm()) > 0
                ):  # e.g. resid_pre 0 at a template token: one embedding for both sets
                    rows.append({"layer": layer, "rate": None, "reason": "zero difference in means"})
                    continue
                rows.append({"layer": layer, **_refusal(lm, p.harmful_test, tokens, vec).to_dict()})
        by_layer_rows.append(rows)
        if progress:
            print(f"  {spec}: layer {chosen['layer']}, refusal {baseline[-1]['rate']:.3f}", flush=True)
    matrix: list[list[float | None]] = []
    ci: list[list[list[float] | None]] = []
    counts: list[list[list[int] | None]] = []
    compliance: list[list[dict[str, Any] | None]] = []
    for i, lm in enumerate(lms):
        tokens = max_new_tokens or (16 if judge_for(lm).name == "organism" else 48)
        mrow: list[float | None] = []
        crow: list[list[float] | None] = []
        krow: list[list[int] | None] = []
        comp: list[dict[str, Any] | None] = []
        for j in range(len(lms)):
            if dirs[j].shape[-1] != lm.d_model:
                mrow.append(None)
                crow.append(None)
                krow.append(None)
                comp.append(None)
                continue
            o = outcome(lm, judge_for(lm), prompts[i].harmful_test, tokens, dirs[j])
            r = o.refusal
            mrow.append(r["rate"])
            crow.append([r["ci_low"], r["ci_high"]])
            krow.append([r["k"], r["n"]])
            comp.append(o.compliance)
        matrix.append(mrow)
        ci.append(crow)
        counts.append(krow)
        compliance.append(comp)
    ortho, healths = [], []
    if defenses:
        ref_tokens = max_new_tokens or (16 if judge_for(lms[0]).name == "organism" else 48)
        answers = generate(lms[0], prompts[0].harmless_test, max_new_tokens=ref_tokens, progress=False)
        for i, lm in enumerate(lms):
            judge = judge_for(lm)
            tokens = max_new_tokens or (16 if judge.name == "organism" else 48)
            ortho.append(
                {"baseline": outcome(lm, judge, prompts[i].harmful_test, tokens).to_dict()}
                | weight_attack(lm, judge, prompts[i].harmful_test, dirs[i], tokens, seed)
                | {"subspace_ablation": subspace_attack(lm, judge, prompts[i], tokens, seed)}
            )
            healths.append(health(lm, judge, prompts[0].harmless_test, answers, tokens))
            if progress:
                print(f"  {specs[i]}: orthogonalized and health measured", flush=True)
    prov = {
        "version": __version__,
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "prompts": [p.source for p in prompts],
        "seconds": round(time.perf_counter() - t0, 2),
        "ablation": "directional ablation from every residual write (interventions.ablate)",
        "control": "random direction of equal norm (causal.controls.random_like, seed)",
        "max_new_tokens": max_new_tokens,
        "defenses": defenses,
        "selection": selection,
    }
    if defenses:
        prov["orthogonalization"] = "interventions.orthogonalize (standard) with the model's own direction"
        prov["perplexity_answers"] = f"greedy harmless answers of {specs[0]} (the first model)"
    return RobustnessResult(
        list(specs),
        matrix,
        ci,
        counts,
        control,
        baseline,
        spectra,
        by_layer_rows,
        info,
        prov,
        compliance,
        ortho,
        healths,
    )
