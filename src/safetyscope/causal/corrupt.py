"""How the corrupted run of a patching experiment is made.

* ``pairs``: counterfactual prompts (one corrupted prompt of equal token length per clean prompt).
* ``noise``: the clean prompt with Gaussian noise added to the embeddings (the layer-0 residual
  input, ``resid_pre`` 0) of the chosen tokens, ``N(0, (k·σ)²)`` with ``σ`` the standard deviation of
  those embeddings over every token of the clean prompts and ``k = 3`` by default (Meng et al.
  2022, ROME's causal tracing; the compendium's "3× the embedding std").
* ``mean``: the chosen tokens' embeddings replaced by the mean embedding over every token of the
  clean prompts (dataset-wide mean ablation of the input).
* ``zero``: the chosen tokens' embeddings set to zero (zero ablation of the input).

Every corruption but ``pairs`` is an edit of ``resid_pre`` 0, so it composes with the patches
of a sweep (the patch is applied after the corruption when both hit the same site).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from safetyscope.causal.patch_spec import PatchingError

#: Corruption kinds.
CORRUPTIONS: tuple[str, ...] = ("pairs", "noise", "mean", "zero")


@dataclass(frozen=True)
class Corruption:
    """A corruption: its kind, which tokens it hits, the noise scale (in embedding stds) and seed."""

    kind: str = "pairs"
    positions: str = "all"
    noise_scale: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in CORRUPTIONS:
            raise PatchingError(f"Unknown corruption {self.kind!r}; use one of {list(CORRUPTIONS)}.")
        if not (math.isfinite(self.noise_scale) and self.noise_scale > 0):
            raise PatchingError(f"noise_scale must be a positive number, got {self.noise_scale}.")

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


@dataclass
class EmbeddingWrites:
    """Per prompt, the token indices and values written at ``resid_pre`` 0 (added when ``add``)."""

    toks: list[list[int]]
    values: list[Tensor]
    add: bool
    sigma: float | None


def embedding_writes(corruption: Corruption, resid0: Sequence[Tensor], toks: Sequence[Sequence[int]]) -> EmbeddingWrites:
    """The writes that turn clean prompts into corrupted ones.

    Args:
        corruption: a ``noise``, ``mean`` or ``zero`` corruption.
        resid0: each clean prompt's layer-0 residual input, ``[T_i, d_model]`` (unpadded).
        toks: the token indices to corrupt in each prompt.
    """
    if corruption.kind == "pairs":
        raise PatchingError("Counterfactual pairs need no embedding writes.")
    if any(not t for t in toks):
        raise PatchingError("The corruption positions select no token in some prompt; nothing would be corrupted.")
    flat = torch.cat([r.double() for r in resid0])
    d = flat.shape[-1]
    if corruption.kind == "noise":
        sigma = float(flat.std())
        gen = torch.Generator().manual_seed(corruption.seed)
        vals = [torch.randn(len(t), d, generator=gen, dtype=torch.float64) * (corruption.noise_scale * sigma)
                for t in toks]
        return EmbeddingWrites([list(t) for t in toks], vals, add=True, sigma=sigma)
    fill = flat.mean(0) if corruption.kind == "mean" else torch.zeros(d, dtype=torch.float64)
    return EmbeddingWrites([list(t) for t in toks], [fill.expand(len(t), d).clone() for t in toks], add=False,
                           sigma=None)
