"""Concept lens: project every layer's residual stream onto saved concept directions.

Where the logit lens asks "which *token* does layer ``l`` point to?", a concept lens asks "how
much of *concept* ``c`` does layer ``l`` carry?" (compendium §2.5; Feucht et al. 2024 read
concept-level rather than token-level information from hidden states). For a unit direction
``v_c`` (a refusal direction, a trigger direction, any file written by ``directions``):

    s_c,l(x) = h_l(x) · v_c                 (the projection of the block-``l`` output)

read at a position of each prompt (the last token by default). A direction file holding one
direction per layer (a :class:`~safetyscope.directions.DirectionSet`) is read layer by layer
(``v_c,l``); a single direction is read at every layer. Reported per layer and prompt set: the
mean projection (95% interval), and for two sets the AUROC of the projection separating them,
beside the AUROC of a random direction of equal norm (the control: a random direction's
projection separates classes only as much as their raw geometry does; having no orientation, it
is scored on its better side, ``max(AUROC, 1 - AUROC)``). When two classes are far apart in the
residual stream *every* direction separates them (both AUROCs near 1), so the class gap along
the concept, ``gap = mean_a(s) - mean_b(s)``, is also reported beside the mean absolute gap
along 16 random unit directions: a concept direction earns its name by a gap many times the
random one (for a difference ``Δ`` of class means, a random unit direction sees about
``|Δ| / sqrt(d)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.sites import Positions
from safetyscope.analysis.lens import residuals
from safetyscope.analysis.probes import auc_from_ranks
from safetyscope.causal.controls import random_like
from safetyscope.data.prompts import PromptSet
from safetyscope.directions.direction import Direction, DirectionSet
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.stats import mean_interval

#: Random unit directions whose mean absolute class gap is the control of a concept's gap.
N_RANDOM = 16


def concept_vectors(
    concept: Direction | DirectionSet, layers: Sequence[int], d_model: int
) -> dict[int, Tensor]:
    """Unit vector per layer: a set's own direction at each layer it has, a single direction everywhere."""
    dirs = list(concept) if isinstance(concept, DirectionSet) else [concept]
    for dvec in dirs:
        if dvec.vector.shape[-1] != d_model:
            raise SafetyscopeError(
                f"A {dvec.method} direction has width {dvec.vector.shape[-1]}, the model "
                f"{d_model}: it was read from another model."
            )
    if len(dirs) == 1:
        v = dirs[0].vector.double()
        return dict.fromkeys(layers, v / v.norm())
    by_layer = {dvec.layer: dvec.vector.double() / dvec.vector.double().norm() for dvec in dirs}
    return {layer: by_layer[layer] for layer in layers if layer in by_layer}


@dataclass
class ConceptLayer:
    """One concept at one layer: mean projection per set (95% CI), AUROC of the first two sets and its control."""

    layer: int
    mean: dict[str, float]
    ci: dict[str, tuple[float, float]]
    auroc: float | None
    auroc_random: float | None
    gap: float | None = None
    gap_random: float | None = None


@dataclass
class ConceptLensReport:
    """Per-concept, per-layer projections of the residual stream, serialisable to JSON."""

    concepts: dict[str, list[ConceptLayer]]
    sets: list[str]
    n: dict[str, int]
    positions: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConceptLensReport:
        """Inverse of :meth:`to_dict`."""
        concepts = {
            k: [
                ConceptLayer(
                    x["layer"],
                    x["mean"],
                    {s: tuple(c) for s, c in x["ci"].items()},
                    x["auroc"],
                    x["auroc_random"],
                    x.get("gap"),
                    x.get("gap_random"),
                )
                for x in v
            ]
            for k, v in d["concepts"].items()
        }
        return cls(concepts, d["sets"], d["n"], d["positions"], d.get("provenance", {}))

    def figure(self, concept: str | None = None) -> dict[str, Any]:
        """A ``curves`` spec of the mean projection by layer per set (95% bands) for one concept."""
        name = concept or next(iter(self.concepts))
        rows = self.concepts[name]
        series = [
            {
                "label": s,
                "y": [r.mean[s] for r in rows],
                "low": [r.ci[s][0] for r in rows],
                "high": [r.ci[s][1] for r in rows],
                "role": "effect",
            }
            for s in self.sets
        ]
        cap = ""
        if rows and rows[0].auroc is not None:
            cap = "AUROC by layer: " + ", ".join(
                f"L{r.layer} {r.auroc:.2f} (random {r.auroc_random:.2f})" for r in rows if r.auroc is not None
            )
        return {
            "kind": "curves",
            "x": [r.layer for r in rows],
            "series": series,
            "xlabel": "layer",
            "ylabel": "projection h·v",
            "title": f"Concept lens: {name} ({self.positions})",
            "caption": cap,
        }

    def gap_figure(self) -> dict[str, Any]:
        """A ``curves`` spec: each concept's class gap by layer beside the mean gap along random directions."""
        series = []
        for g, (name, rows) in enumerate(self.concepts.items()):
            series.append(
                {
                    "label": f"{name}: gap along the concept",
                    "y": [r.gap for r in rows],
                    "role": "effect",
                    "group": g,
                }
            )
            series.append(
                {
                    "label": f"{name}: random directions",
                    "y": [r.gap_random for r in rows],
                    "role": "control",
                    "group": g,
                }
            )
        first = next(iter(self.concepts.values()))
        cap = "; ".join(
            f"{n}: AUROC "
            + ", ".join(
                f"L{r.layer} {r.auroc:.2f} (random {r.auroc_random:.2f})" for r in rows if r.auroc is not None
            )
            for n, rows in self.concepts.items()
        )
        return {
            "kind": "curves",
            "x": [r.layer for r in first],
            "series": series,
            "xlabel": "layer",
            "ylabel": f"mean projection gap ({self.sets[0]} - {self.sets[1]})",
            "title": "Concept lens: class gap by layer",
            "caption": cap,
        }


def concept_lens(
    lm: LoadedModel,
    concepts: Mapping[str, Direction | DirectionSet],
    prompt_sets: Mapping[str, PromptSet | Sequence[str]],
    *,
    layers: Sequence[int] | None = None,
    positions: Positions | str = "last",
    seed: int = 0,
) -> ConceptLensReport:
    """Project each set's residuals onto each concept at every layer.

    Args:
        lm: the model.
        concepts: ``{name: Direction or DirectionSet}`` (e.g. ``DirectionSet.load(path)``).
        prompt_sets: ``{name: prompts}``; with two or more, the first two are compared by AUROC
            (the first is the positive class).
        layers: blocks to read (default all); positions: where to read.
        seed: seeds the random direction of the control.
    """
    if not concepts or not prompt_sets:
        raise SafetyscopeError("concept_lens needs at least one concept and one prompt set.")
    names = list(prompt_sets)
    acts: dict[str, Tensor] = {}
    layer_list: list[int] = []
    for name, prompts in prompt_sets.items():
        h, layer_list = residuals(lm, prompts, layers, positions)
        acts[name] = h.double()
    out: dict[str, list[ConceptLayer]] = {}
    for cname, concept in concepts.items():
        vecs = concept_vectors(concept, layer_list, lm.d_model)
        if not vecs:
            raise SafetyscopeError(f"Concept {cname!r} has no direction at any of layers {layer_list}.")
        rows = []
        for j, layer in enumerate(layer_list):
            if layer not in vecs:
                continue
            v = vecs[layer]
            proj = {s: acts[s][:, j] @ v for s in names}
            mean = {s: float(p.mean()) for s, p in proj.items()}
            ci = {s: mean_interval([float(x) for x in p]) for s, p in proj.items()}
            auroc = ctrl = gap = gap_r = None
            if len(names) >= 2:
                a, b = names[0], names[1]
                labels = torch.cat([torch.ones(len(proj[a])), torch.zeros(len(proj[b]))])
                auroc = auc_from_ranks(torch.cat([proj[a], proj[b]]), labels)
                r = random_like(v.float(), seed + layer).double()
                ctrl = auc_from_ranks(torch.cat([acts[a][:, j] @ r, acts[b][:, j] @ r]), labels)
                ctrl = max(ctrl, 1.0 - ctrl)  # a random direction has no orientation: its best side
                gap = mean[a] - mean[b]
                delta = acts[a][:, j].mean(0) - acts[b][:, j].mean(0)
                rand = torch.stack(
                    [random_like(v.float(), seed + 7919 * (s + 1) + layer) for s in range(N_RANDOM)]
                )
                gap_r = float((rand.double() @ delta).abs().mean())
            rows.append(ConceptLayer(layer, mean, ci, auroc, ctrl, gap, gap_r))
        out[cname] = rows
    pos = positions if isinstance(positions, str) else positions.key
    prov = {
        "model_fingerprint": lm.fingerprint(),
        "seed": seed,
        "safetyscope_version": __version__,
        "concepts": {
            c: {"method": getattr(x, "method", None), "provenance": getattr(x, "provenance", {})}
            for c, x in concepts.items()
        },
    }
    return ConceptLensReport(out, names, {s: int(a.shape[0]) for s, a in acts.items()}, pos, prov)
