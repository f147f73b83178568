"""Contrast activations: harmful and harmless prompts read at the same sites, ``[n, layers, d]``.

:func:`collect_contrast` runs :func:`safetyscope.activations.collect` on both prompt sets at
every requested layer (by default the residual stream after each block, at the last
post-instruction token) and stacks the rows per prompt; :func:`stacked` does the stacking
for results collected elsewhere. Direction extraction, geometry and probes all start here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jaxtyping import Float
from torch import Tensor

from safetyscope.activations.collect import collect
from safetyscope.activations.result import ActivationResult
from safetyscope.activations.sites import Positions, Site
from safetyscope.data.prompts import PromptSet
from safetyscope.directions.checks import DirectionError
from safetyscope.model.loading import LoadedModel


def stacked(result: ActivationResult, reduce_tokens: str = "mean") -> tuple[Float[Tensor, "n layers d"], list[int], dict[str, Any]]:
    """``[n_prompts, n_sites, d]`` rows of a kept-rows result, its layer numbers and provenance.

    Prompts with several selected tokens (e.g. ``positions="eoi"``) are averaged over them
    (``reduce_tokens="mean"``) or reduced to their last one (``"last"``).
    """
    if result.reduce not in ("none", "paired_diff"):
        raise DirectionError(
            f"Directions need per-prompt rows; this result was collected with reduce={result.reduce!r}. "
            "Collect with reduce='none'."
        )
    layers = [s.layer for s in result.sites]
    if len(set(layers)) != len(layers):
        raise DirectionError(f"Several stream points per layer ({[s.key for s in result.sites]}); pass one point.")
    prov = dict(result.provenance, sites=[s.key for s in result.sites], positions=result.positions.key,
                reduce_tokens=reduce_tokens)
    return result.stacked(reduce_tokens), layers, prov


@dataclass
class Contrast:
    """Harmful and harmless activations at the same layers.

    Attributes:
        harmful: ``[n, layers, d]`` (float32, CPU).
        harmless: ``[m, layers, d]``.
        layers: the layer number of each middle-axis entry.
        provenance: model fingerprint, prompt hashes, sites, positions.
    """

    harmful: Float[Tensor, "n layers d"]
    harmless: Float[Tensor, "m layers d"]
    layers: list[int]
    provenance: dict[str, Any] = field(default_factory=dict)
    point: str = "resid_post"

    def sites(self) -> list[Site]:
        """The site of each middle-axis entry (pass ``point=contrast.point`` to ``extract``)."""
        return [Site(layer, self.point) for layer in self.layers]  # type: ignore[arg-type]

    def directions(self, method: str = "diff_means", **opts: Any) -> Any:
        """:func:`~safetyscope.directions.extract` per layer; each direction records its site and model."""
        from safetyscope.directions.extract import extract

        return extract(self.harmful, self.harmless, method, layers=self.layers, provenance=self.provenance,
                       point=self.point, **opts)

    def at(self, layer: int) -> tuple[Float[Tensor, "n d"], Float[Tensor, "m d"]]:
        """Both classes' rows at ``layer``."""
        if layer not in self.layers:
            raise DirectionError(f"Layer {layer} was not collected; layers: {self.layers}.")
        i = self.layers.index(layer)
        return self.harmful[:, i], self.harmless[:, i]


def collect_contrast(
    lm: LoadedModel,
    harmful: PromptSet | Sequence[str],
    harmless: PromptSet | Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    point: str = "resid_post",
    positions: Positions | str = "eoi:-1",
    reduce_tokens: str = "mean",
    batch_size: int | None = None,
    progress: bool = False,
) -> Contrast:
    """Collect both prompt sets at ``layers`` (default: all) and stack them per prompt.

    Args:
        lm: a loaded model.
        harmful, harmless: the two prompt sets (paired by index where a method needs pairs).
        layers: block indices (default every block).
        point: stream point read at each layer (default the block output, ``resid_post``).
        positions: token selector (default the last post-instruction token, ``eoi:-1``).
        reduce_tokens: how several selected tokens per prompt are combined (``mean``/``last``).
        batch_size: upper bound on prompts per forward pass.
        progress: show a progress bar.
    """
    layer_list = list(range(lm.n_layers)) if layers is None else list(layers)
    sites = [Site(layer, point) for layer in layer_list]  # type: ignore[arg-type]
    out = []
    for prompts in (harmful, harmless):
        res = collect(lm, prompts, sites, positions, "none", batch_size=batch_size, progress=progress)
        out.append(stacked(res, reduce_tokens))
    (h, lay, prov_h), (s, _, prov_s) = out
    return Contrast(h, s, lay, {"harmful": prov_h, "harmless": prov_s}, point)
