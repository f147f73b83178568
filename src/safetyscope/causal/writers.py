"""Which writers put the refusal direction into the stream: a direct-write attribution.

For each attention-out and MLP-out writer ``c`` of each layer, the score is how much more it
writes along the unit direction ``r̂`` on harmful than on harmless prompts, at the
end-of-instruction positions: ``score_c = (mean_harmful(c_out) − mean_harmless(c_out)) · r̂``
(the direct effect of ``c`` on the direction's coordinate; it ignores paths through later
layers). The top writers are candidates for component-targeted orthogonalization
(``edit --components``, compendium 5.5 step 4); patching results can name them instead
(:func:`~safetyscope.causal.edit_compare.components_from_patching`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from safetyscope.activations import Site, collect
from safetyscope.model.loading import LoadedModel


def direction_writers(
    lm: LoadedModel,
    direction: Tensor,
    harmful: Sequence[str],
    harmless: Sequence[str],
    positions: str = "eoi",
) -> list[tuple[str, float]]:
    """``[(name, score)]`` for every ``aL`` / ``mL`` writer, largest score first (module docstring)."""
    u = direction.double() / direction.double().norm()
    sites = [Site(layer, point) for layer in range(lm.n_layers) for point in ("attn_out", "mlp_out")]
    h = collect(lm, list(harmful), sites, positions, "mean", progress=False)
    b = collect(lm, list(harmless), sites, positions, "mean", progress=False)
    scores = []
    for s in sites:
        name = f"{'a' if s.point == 'attn_out' else 'm'}{s.layer}"
        scores.append((name, float((h.mean(s) - b.mean(s)) @ u)))
    return sorted(scores, key=lambda x: -x[1])
