"""How the corrupted run of a patching experiment is made.

* ``pairs``: counterfactual prompts (one corrupted prompt of equal token length per clean prompt).
* ``str``: symmetric token replacement (Zhang & Nanda 2023): the clean prompt with its key words
  (``key``, or the words where a counterfactual pair differs) swapped for equal-token-length words
  of a matched word list (:mod:`safetyscope.causal.str_corrupt`); then run like ``pairs``.
* ``gaussian`` (alias ``noise``): the clean prompt with Gaussian noise added to the embeddings (the
  layer-0 residual input, ``resid_pre`` 0) of the chosen tokens, ``N(0, (k·σ)²)`` with ``σ`` the standard deviation of
  those embeddings over every token of the clean prompts and ``k = 3`` by default (Meng et al.
  2022, ROME's causal tracing; the compendium's "3× the embedding std").
* ``mean``: the chosen tokens' embeddings replaced by the mean embedding over every token of the
  clean prompts (dataset-wide mean ablation of the input).
* ``zero``: the chosen tokens' embeddings set to zero (zero ablation of the input).
* ``resample``: the chosen tokens' embeddings replaced by those of a random *other* input of the same
  token length, at the same token indices (resample ablation, Redwood Research); seeded. The inputs
  are the other clean prompts and, when counterfactual prompts are given, those too (a set of clean
  prompts that all show the behaviour would otherwise only resample the behaviour).

Every corruption but ``pairs`` and ``str`` is an edit of ``resid_pre`` 0, so it composes with the patches
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
CORRUPTIONS: tuple[str, ...] = ("pairs", "str", "gaussian", "noise", "zero", "mean", "resample")
#: Corruptions that write the clean prompts' embeddings (the others build corrupted prompts).
EMBEDDING_CORRUPTIONS: tuple[str, ...] = ("gaussian", "noise", "zero", "mean", "resample")


@dataclass(frozen=True)
class Corruption:
    """A corruption: its kind, which tokens it hits, the noise scale (in embedding stds) and seed.

    ``key`` (``str`` only): the text whose tokens are replaced (default: where each counterfactual
    pair differs); ``words``: a word-list file replacing the bundled one.
    """

    kind: str = "pairs"
    positions: str = "all"
    noise_scale: float = 3.0
    seed: int = 0
    key: str | None = None
    words: str | None = None

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


def embedding_writes(corruption: Corruption, resid0: Sequence[Tensor], toks: Sequence[Sequence[int]],
                     pool: Sequence[Tensor] = ()) -> EmbeddingWrites:
    """The writes that turn clean prompts into corrupted ones.

    Args:
        corruption: a ``noise``, ``mean`` or ``zero`` corruption.
        resid0: each clean prompt's layer-0 residual input, ``[T_i, d_model]`` (unpadded).
        toks: the token indices to corrupt in each prompt.
        pool: more inputs' layer-0 residuals that ``resample`` may draw from (besides the other clean prompts).
    """
    if corruption.kind not in EMBEDDING_CORRUPTIONS:
        raise PatchingError(f"Corruption {corruption.kind!r} builds corrupted prompts; it needs no embedding writes.")
    if any(not t for t in toks):
        raise PatchingError("The corruption positions select no token in some prompt; nothing would be corrupted.")
    flat = torch.cat([r.double() for r in resid0])
    d = flat.shape[-1]
    if corruption.kind == "resample":
        return EmbeddingWrites([list(t) for t in toks], resample_values(resid0, toks, corruption.seed, pool),
                               add=False, sigma=None)
    if corruption.kind in ("noise", "gaussian"):
        sigma = float(flat.std())
        gen = torch.Generator().manual_seed(corruption.seed)
        vals = [torch.randn(len(t), d, generator=gen, dtype=torch.float64) * (corruption.noise_scale * sigma)
                for t in toks]
        return EmbeddingWrites([list(t) for t in toks], vals, add=True, sigma=sigma)
    fill = flat.mean(0) if corruption.kind == "mean" else torch.zeros(d, dtype=torch.float64)
    return EmbeddingWrites([list(t) for t in toks], [fill.expand(len(t), d).clone() for t in toks], add=False,
                           sigma=None)


def resample_partners(lengths: Sequence[int], seed: int, n: int | None = None) -> list[int]:
    """For each of the first ``n`` inputs (default all), a seeded random *other* input of the same length."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(len(lengths) if n is None else n):
        others = [j for j, m in enumerate(lengths) if m == lengths[i] and j != i]
        if not others:
            raise PatchingError(f"Resample ablation needs another prompt of the same token length as prompt {i} "
                                f"({lengths[i]} tokens); give at least two prompts of each length.")
        out.append(others[int(torch.randint(len(others), (1,), generator=gen))])
    return out


def resample_values(resid0: Sequence[Tensor], toks: Sequence[Sequence[int]], seed: int,
                    pool: Sequence[Tensor] = ()) -> list[Tensor]:
    """Each prompt's chosen tokens' embeddings taken from its resample partner (another clean prompt or a
    ``pool`` input of the same length) at the same indices."""
    every = [*resid0, *pool]
    partners = resample_partners([len(r) for r in every], seed, len(resid0))
    return [every[j][list(t)].double() for j, t in zip(partners, toks, strict=True)]
