"""Perturbation targets for the activation-plateau study (Giglemiani et al. 2024, arXiv 2409.15019).

Each builder returns one target per base activation, ``[n, d]``. Kinds:

* ``real``: another real activation (a derangement of the target pool);
* ``gaussian``: a sample of N(μ, Σ) fitted to the real activations' mean and covariance;
* ``cov_random``: the cov-random mixture, μ + √(1-λ)·L z₁ + √λ·σ z₂ with Σ = L Lᵀ and
  σ² = tr(Σ)/d (half fitted covariance, half isotropic noise of the same total variance);
* ``random``: an isotropic Gaussian direction (the random baseline);
* ``sae_recon``: the SAE reconstruction ``decode(encode(t))`` of a real target ``t``;
* ``bag_of_latents``: ``t``'s active latents each swapped for a random latent of similar firing
  frequency (activation values kept), decoded;
* ``synthetic``: latents chosen with matched sparsity (L0) *and* matched pairwise cosine structure:
  each of ``t``'s active latents in turn is replaced by the similar-frequency candidate whose
  decoder cosines to the latents already chosen best match the real latents' cosines; decoded.

:func:`norm_matched` is the shared norm control: every kind is rescaled to the norm of the real
target of its row, so no kind differs from ``real`` by its length. The SAE only needs the
:class:`SAELike` protocol (``encode``, ``decode``, ``W_dec [d_sae, d]``), which
``safetyscope.sae.SparseAutoencoder`` satisfies.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope.errors import SafetyscopeError

BASE_KINDS: tuple[str, ...] = ("real", "gaussian", "cov_random", "random")
SAE_KINDS: tuple[str, ...] = ("sae_recon", "bag_of_latents", "synthetic")


@runtime_checkable
class SAELike(Protocol):
    """What the plateau study needs of a sparse autoencoder."""

    W_dec: Tensor

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, f: Tensor) -> Tensor: ...


def derangement(n: int, generator: torch.Generator) -> Tensor:
    """A random permutation with no fixed point (``n >= 2``)."""
    if n < 2:
        raise SafetyscopeError("The real-target kind needs at least two activations.")
    perm = torch.randperm(n, generator=generator)
    return torch.roll(perm, 1)[torch.argsort(perm)]  # i -> the successor of i in a random cycle


def norm_matched(targets: Float[Tensor, "n d"], reference: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
    """Rescale each target row to the norm of the matching reference row."""
    return targets * (reference.norm(dim=-1, keepdim=True) / targets.norm(dim=-1, keepdim=True).clamp_min(1e-12))


def _factor(acts: Tensor) -> tuple[Tensor, Tensor]:
    x = acts.double()
    mu = x.mean(0)
    cov = torch.cov(x.T) if x.shape[0] > 1 else torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(cov)
    return mu, evecs * evals.clamp_min(0).sqrt()  # L with L Lᵀ = Σ (PSD part)


def gaussian_fit(acts: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` samples of N(mean, cov) of ``acts``."""
    mu, lower = _factor(acts)
    z = torch.randn(n, lower.shape[1], generator=generator, dtype=torch.float64)
    return (mu + z @ lower.T).float()


def cov_random(acts: Tensor, n: int, generator: torch.Generator, mix: float = 0.5) -> Tensor:
    """The cov-random mixture: μ + √(1-mix)·L z₁ + √mix·σ z₂ (σ² = tr Σ / d)."""
    mu, lower = _factor(acts)
    d = lower.shape[0]
    sigma = (lower.pow(2).sum() / d).sqrt()
    z1 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    z2 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return (mu + (1 - mix) ** 0.5 * z1 @ lower.T + mix ** 0.5 * sigma * z2).float()


def latent_frequency(sae: SAELike, acts: Tensor) -> Tensor:
    """Fraction of ``acts`` on which each latent is active, ``[d_sae]``."""
    with torch.no_grad():
        return (_encode(sae, acts) > 0).double().mean(0)


def _encode(sae: SAELike, x: Tensor) -> Tensor:
    with torch.no_grad():
        return sae.encode(x.to(sae.W_dec.dtype)).double()


def _decode(sae: SAELike, f: Tensor) -> Tensor:
    with torch.no_grad():
        return sae.decode(f.to(sae.W_dec.dtype)).float()


def _similar_latents(freq: Tensor, latent: int, pool: int) -> Tensor:
    """The ``pool`` latents (other than ``latent``) closest to it in log firing frequency."""
    logf = (freq + 1e-6).log()
    gap = (logf - logf[latent]).abs()
    gap[latent] = float("inf")
    return torch.argsort(gap)[:pool]


def sae_reconstruction(sae: SAELike, targets: Tensor) -> Tensor:
    """``decode(encode(t))`` per row."""
    return _decode(sae, _encode(sae, targets))


def bag_of_latents(sae: SAELike, targets: Tensor, freq: Tensor, generator: torch.Generator, pool: int = 16) -> Tensor:
    """Each active latent swapped for a random one of similar frequency, activation kept; decoded."""
    return _decode(sae, bag_latents(sae, targets, freq, generator, pool))


def bag_latents(sae: SAELike, targets: Tensor, freq: Tensor, generator: torch.Generator, pool: int = 16) -> Tensor:
    """The latent codes of :func:`bag_of_latents` (before decoding), ``[n, d_sae]``."""
    f = _encode(sae, targets)
    out = torch.zeros_like(f)
    for i in range(f.shape[0]):
        used: set[int] = set()
        for j in f[i].nonzero().flatten().tolist():
            cand = [c for c in _similar_latents(freq, j, pool + len(used)).tolist() if c not in used]
            pick = cand[int(torch.randint(len(cand), (1,), generator=generator))]
            used.add(pick)
            out[i, pick] = f[i, j]
    return out


def synthetic_structured(sae: SAELike, targets: Tensor, freq: Tensor, generator: torch.Generator,
                         pool: int = 32) -> Tensor:
    """Latents with matched L0 and matched pairwise decoder cosines (greedy, largest activation first); decoded."""
    return _decode(sae, synthetic_latents(sae, targets, freq, generator, pool))


def synthetic_latents(sae: SAELike, targets: Tensor, freq: Tensor, generator: torch.Generator,
                      pool: int = 32) -> Tensor:
    """The latent codes of :func:`synthetic_structured` (before decoding), ``[n, d_sae]``."""
    f = _encode(sae, targets)
    w = sae.W_dec.detach().double()
    w = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = torch.zeros_like(f)
    for i in range(f.shape[0]):
        active = f[i].nonzero().flatten()
        active = active[torch.argsort(f[i, active], descending=True)].tolist()
        chosen: list[int] = []
        for k, j in enumerate(active):
            cand = torch.tensor([c for c in _similar_latents(freq, j, pool + len(chosen)).tolist() if c not in chosen])
            if k == 0:
                pick = int(cand[int(torch.randint(len(cand), (1,), generator=generator))])
            else:
                want = w[active[:k]] @ w[j]                   # real cosines to the latents before j
                have = w[cand] @ w[torch.tensor(chosen)].T    # candidates' cosines to those chosen
                pick = int(cand[int((have - want).pow(2).sum(-1).argmin())])
            chosen.append(pick)
            out[i, pick] = f[i, j]
    return out


def build_targets(kind: str, real_pool: Tensor, real_targets: Tensor, generator: torch.Generator,
                  sae: SAELike | None = None, freq: Tensor | None = None) -> Tensor:
    """Targets of ``kind`` for ``len(real_targets)`` rows, norm-matched to ``real_targets``.

    Args:
        kind: one of :data:`BASE_KINDS` + :data:`SAE_KINDS`.
        real_pool: real activations to fit the Gaussian kinds on.
        real_targets: the row-wise real targets (the ``real`` kind itself, and the norm reference).
        sae, freq: the SAE and its latent frequencies (:func:`latent_frequency`), for the SAE kinds.
    """
    n, d = real_targets.shape
    if kind == "real":
        return real_targets.clone()
    if kind == "gaussian":
        raw = gaussian_fit(real_pool, n, generator)
    elif kind == "cov_random":
        raw = cov_random(real_pool, n, generator)
    elif kind == "random":
        raw = torch.randn(n, d, generator=generator)
    elif kind in SAE_KINDS:
        if sae is None or freq is None:
            raise SafetyscopeError(f"Target kind {kind!r} needs an SAE (pass --sae DIR).")
        if sae.W_dec.shape[1] != d:
            raise SafetyscopeError(f"The SAE decodes to width {sae.W_dec.shape[1]}, the site has width {d}.")
        raw = (sae_reconstruction(sae, real_targets) if kind == "sae_recon"
               else bag_of_latents(sae, real_targets, freq, generator) if kind == "bag_of_latents"
               else synthetic_structured(sae, real_targets, freq, generator))
    else:
        raise SafetyscopeError(f"Unknown target kind {kind!r}; use one of {BASE_KINDS + SAE_KINDS}.")
    return norm_matched(raw, real_targets)
