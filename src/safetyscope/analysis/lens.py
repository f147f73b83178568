"""Logit lens: decode every layer's residual stream through the final norm and unembedding.

``LogitLens(h_l) = W_U · norm_final(h_l)`` (nostalgebraist 2020) reads what next token the
residual stream at layer ``l`` already points to. At the last prompt position (the token before
the response) the refusal-vs-compliance logit gap

    gap_l = mean_{t ∈ R} logit_l(t) - mean_{t ∈ C} logit_l(t)

(``R``: first tokens of refusals such as "I", "Sorry"; ``C``: first tokens of compliant answers
such as "Sure") shows at which depth the decision to refuse becomes readable: for harmful
prompts it rises above the harmless prompts' gap. At the last layer the lens is exact (it *is*
the model's output, up to any logit soft-capping). :mod:`safetyscope.analysis.tuned_lens`
adds a learned per-layer translator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.collect import collect
from safetyscope.activations.sites import Positions, Site
from safetyscope.data.prompts import PromptSet
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel

Translator = Callable[[int, Tensor], Tensor]


@dataclass(frozen=True)
class TokenSets:
    """Refusal-start and compliance-start token ids (and their strings, for reports)."""

    refusal: tuple[int, ...]
    compliance: tuple[int, ...]
    refusal_tokens: tuple[str, ...] = ()
    compliance_tokens: tuple[str, ...] = ()


def first_token_ids(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Distinct first token ids of ``texts`` (each also tried with a leading space), skipping unknowns."""
    ids: set[int] = set()
    unk = getattr(tokenizer, "unk_token_id", None)
    for text in texts:
        for variant in (text, " " + text):
            enc = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if enc and enc[0] != unk:
                ids.add(int(enc[0]))
    return sorted(ids)


def token_sets(tokenizer: Any, refusal_starts: Sequence[str], compliance_starts: Sequence[str]) -> TokenSets:
    """Token sets from response openings; tokens in both sets are dropped from both.

    Raises:
        SafetyscopeError: a set ends up empty (no opening maps to a known, unshared token).
    """
    r_all, c_all = set(first_token_ids(tokenizer, refusal_starts)), set(first_token_ids(tokenizer, compliance_starts))
    r, c = sorted(r_all - c_all), sorted(c_all - r_all)
    if not r or not c:
        raise SafetyscopeError(
            f"Empty token set: refusal starts {list(refusal_starts)} -> {r}, compliance starts "
            f"{list(compliance_starts)} -> {c}. Give openings whose first tokens differ."
        )
    names = tokenizer.convert_ids_to_tokens
    return TokenSets(tuple(r), tuple(c), tuple(names(r)), tuple(names(c)))


def organism_token_sets(tokenizer: Any) -> TokenSets:
    """The organism's sets: first words of its refusal templates vs its helpful templates."""
    from safetyscope.organism.lexicon import HELPFUL_TEMPLATES, REFUSAL_TEMPLATES

    def openings(templates: Sequence[str]) -> list[str]:
        return [t.split()[0] for t in templates if t and not t.startswith("{")]

    return token_sets(tokenizer, openings(REFUSAL_TEMPLATES), openings(HELPFUL_TEMPLATES))


def apply_lens(lm: LoadedModel, h: Float[Tensor, "*batch"]) -> Float[Tensor, "n vocab"]:
    """``unembed(final_norm(h))`` with the model's own modules (float32 logits on ``lm.device``).

    Gradients flow to ``h`` only: the modules' parameters are used detached, so training a
    translator through the lens leaves the model untouched.
    """
    params = {
        mod: {k: v.detach() for k, v in mod.named_parameters()} for mod in (lm.arch.final_norm, lm.arch.unembed)
    }
    x = h.to(lm.device, lm.dtype)
    x = torch.func.functional_call(lm.arch.final_norm, params[lm.arch.final_norm], (x,))
    return torch.func.functional_call(lm.arch.unembed, params[lm.arch.unembed], (x,)).float()


def residuals(
    lm: LoadedModel, prompts: PromptSet | Sequence[str], layers: Sequence[int] | None = None,
    positions: Positions | str = "last", *, skip_first: bool = False,
) -> tuple[Float[Tensor, "rows layers d"], list[int]]:
    """Residual stream after each block (``resid_post``) at ``positions``: ``[rows, layers, d]``.

    ``skip_first`` drops rows at token position 0 (the BOS token, an outlier in most models).
    """
    layer_list = list(range(lm.n_layers)) if layers is None else sorted(layers)
    res = collect(lm, prompts, [Site(layer, "resid_post") for layer in layer_list], positions, "none",
                  progress=False)
    rows = torch.stack([res.rows[Site(layer, "resid_post").key] for layer in layer_list], 1)
    if skip_first and res.token_position is not None:
        rows = rows[res.token_position > 0]
    return rows.clone(), layer_list


@dataclass
class LayerLens:
    """The refusal-vs-compliance logit gap at one layer (means over prompts, with SDs)."""

    layer: int
    harmful_gap: float
    harmless_gap: float
    separation: float
    harmful_gap_sd: float
    harmless_gap_sd: float


@dataclass
class LensReport:
    """Per-layer logit-lens gaps for harmful and harmless prompts, serialisable to JSON."""

    lens: str
    layers: list[LayerLens]
    refusal_tokens: list[str]
    compliance_tokens: list[str]
    positions: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def at(self, layer: int) -> LayerLens:
        """The result at ``layer``."""
        for x in self.layers:
            if x.layer == layer:
                return x
        raise KeyError(f"No layer {layer}; layers: {[x.layer for x in self.layers]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LensReport:
        """Inverse of :meth:`to_dict`."""
        return cls(data["lens"], [LayerLens(**x) for x in data["layers"]], data["refusal_tokens"],
                   data["compliance_tokens"], data["positions"], data.get("provenance", {}))

    def save(self, path: str | Path) -> Path:
        """Write as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return Path(path)

    def figure(self) -> dict[str, Any]:
        """A ``curves`` spec (:mod:`safetyscope.report.plots`): the gap by layer, harmful vs harmless (the control)."""
        x = [r.layer for r in self.layers]
        return {"kind": "curves", "x": x, "xlabel": "layer", "ylabel": "refusal - compliance logit gap",
                "title": f"{self.lens.capitalize()} lens: refusal gap by layer ({self.positions})",
                "series": [{"label": "harmful", "y": [r.harmful_gap for r in self.layers], "role": "effect"},
                           {"label": "harmless (control)", "y": [r.harmless_gap for r in self.layers],
                            "role": "control"},
                           {"label": "zero", "y": [0.0] * len(x), "role": "baseline"}]}


def logit_gap(logits: Float[Tensor, "*batch vocab"], sets: TokenSets) -> Float[Tensor, "*batch"]:
    """Mean logit of the refusal tokens minus mean logit of the compliance tokens."""
    return logits[..., list(sets.refusal)].mean(-1) - logits[..., list(sets.compliance)].mean(-1)


def logit_lens_gap(
    lm: LoadedModel,
    harmful: PromptSet | Sequence[str],
    harmless: PromptSet | Sequence[str],
    sets: TokenSets,
    *,
    layers: Sequence[int] | None = None,
    positions: Positions | str = "last",
    translator: Translator | None = None,
    lens_name: str = "logit",
) -> LensReport:
    """Refusal-vs-compliance logit gap per layer for harmful and harmless prompts.

    Args:
        lm: the model.
        harmful, harmless: prompt sets.
        sets: refusal and compliance token ids (:func:`token_sets`, :func:`organism_token_sets`).
        layers: blocks to read (default all; the reading is each block's output).
        positions: where to read (default the last prompt token, which predicts the response's first token).
        translator: ``f(layer, h) -> h'`` applied before the lens (a tuned lens); ``None`` for the logit lens.
        lens_name: label recorded in the report.
    """
    gaps = []
    for prompts in (harmful, harmless):
        h, layer_list = residuals(lm, prompts, layers, positions)
        with torch.no_grad():
            per_layer = []
            for i, layer in enumerate(layer_list):
                x = h[:, i] if translator is None else translator(layer, h[:, i])
                per_layer.append(logit_gap(apply_lens(lm, x), sets).double().cpu())
        gaps.append(torch.stack(per_layer, 1))
    gh, gs = gaps
    out = [LayerLens(layer, float(gh[:, i].mean()), float(gs[:, i].mean()),
                     float(gh[:, i].mean() - gs[:, i].mean()), float(gh[:, i].std()), float(gs[:, i].std()))
           for i, layer in enumerate(layer_list)]
    pos = positions if isinstance(positions, str) else positions.key
    prov = {"model_fingerprint": lm.fingerprint(), "n_harmful": gh.shape[0], "n_harmless": gs.shape[0],
            "refusal_ids": list(sets.refusal), "compliance_ids": list(sets.compliance),
            "safetyscope_version": __version__}
    return LensReport(lens_name, out, list(sets.refusal_tokens), list(sets.compliance_tokens), pos, prov)
