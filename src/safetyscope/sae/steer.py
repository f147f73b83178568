"""Steer with SAE latents (compendium 3.4): clamp, scale or ablate latents as an edit at the SAE's site.

At every position of the site, with ``f = encode(x)`` and the SAE's error ``e = x - decode(f)``,
the edit writes ``x' = decode(f') + e`` where ``f'`` is ``f`` with the chosen latents clamped to a
value, multiplied by a factor, or set to 0. Adding ``e`` back means only the chosen latents change:
an edit that leaves ``f`` as it is returns ``x`` exactly (up to float error), so the SAE's own
reconstruction error is not mistaken for the effect of the latents.

The control (compendium 7.7) is the same edit on random latents of *matched activation frequency*:
for each chosen latent, a latent drawn at random among the ``pool`` nearest in firing frequency
(excluding the chosen ones), seeded. :func:`steering_arms` builds baseline / intervened / control
arms for :func:`safetyscope.causal.run_arms`, which reports refusal rates with Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor

from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.causal.arms import Arm
from safetyscope.errors import OptionError
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.model import SparseAutoencoder

SteerMode = Literal["clamp", "scale", "ablate"]
#: Steering modes: ``clamp`` sets latents to ``value``, ``scale`` multiplies them by ``value``, ``ablate`` zeroes them.
STEER_MODES: tuple[str, ...] = ("clamp", "scale", "ablate")


def _check(sae: SparseAutoencoder, latents: Sequence[int], mode: str, values: Tensor) -> None:
    if mode not in STEER_MODES:
        raise OptionError(f"Steering mode {mode!r} is not one of {', '.join(STEER_MODES)}.")
    if not latents:
        raise OptionError("Give at least one latent to steer.")
    bad = [i for i in latents if not 0 <= i < sae.cfg.d_sae]
    if bad:
        raise OptionError(f"Latents {bad} are out of range for an SAE with d_sae={sae.cfg.d_sae}.")
    if values.numel() not in (1, len(latents)) or not torch.isfinite(values).all():
        raise OptionError(f"Steering values must be finite: one, or one per latent ({len(latents)}).")


def steer_activations(sae: SparseAutoencoder, x: Tensor, latents: Sequence[int], mode: str,
                      value: float | Sequence[float] = 0.0) -> Tensor:
    """``decode(f') + (x - decode(f))`` for activations ``x`` ``[..., d_in]`` (see the module docstring)."""
    values = torch.as_tensor(value, dtype=torch.float32).flatten()
    _check(sae, latents, mode, values)
    f = sae.encode(x)
    err = x.to(f.dtype) - sae.decode(f, x)
    idx = torch.as_tensor(list(latents), device=f.device)
    vals = values.to(f.device, f.dtype).expand(len(latents))
    g = f.clone()
    if mode == "clamp":
        g[..., idx] = vals
    elif mode == "scale":
        g[..., idx] = f[..., idx] * vals
    else:
        g[..., idx] = 0.0
    return (sae.decode(g, x) + err).to(x.dtype)


@contextmanager
def latent_edit(lm: LoadedModel, sae: SparseAutoencoder, site: Site, latents: Sequence[int], mode: str,
                value: float | Sequence[float] = 0.0) -> Iterator[None]:
    """Steer ``latents`` at ``site`` for every forward pass inside the block (generation included)."""
    values = torch.as_tensor(value, dtype=torch.float32).flatten()
    _check(sae, latents, mode, values)
    if sae.cfg.d_in != lm.d_model and site.point != "attn_z":
        raise OptionError(f"The SAE reads d_in={sae.cfg.d_in} but {site.key} has width {lm.d_model}.")
    sae_dev = sae.to(lm.device)
    with edit(lm.arch, site, lambda _s, x: steer_activations(sae_dev, x, latents, mode, value)):
        yield


def matched_frequency_latents(frequencies: Tensor, chosen: Sequence[int], *, seed: int = 0, pool: int = 10,
                              exclude: Sequence[int] = ()) -> list[int]:
    """For each chosen latent, a random other latent among the ``pool`` closest in firing frequency."""
    banned = set(chosen) | set(exclude)
    candidates = torch.tensor([i for i in range(len(frequencies)) if i not in banned])
    if len(candidates) < len(chosen):
        raise OptionError("Too few latents left to draw a matched-frequency control.")
    gen = torch.Generator().manual_seed(seed)
    picked: list[int] = []
    for latent in chosen:
        left = torch.tensor([int(c) for c in candidates if int(c) not in picked])
        gap = (frequencies[left].double() - float(frequencies[latent])).abs()
        near = left[gap.argsort()[:pool]]
        picked.append(int(near[torch.randint(len(near), (1,), generator=gen)]))
    return picked


def steering_arms(lm: LoadedModel, sae: SparseAutoencoder, site: Site, latents: Sequence[int],
                  control: Sequence[int], mode: str, value: float | Sequence[float] = 0.0,
                  control_value: float | Sequence[float] | None = None) -> list[Arm]:
    """Baseline, the latent edit, and the same edit on ``control`` latents (``control_value`` or ``value``)."""
    cv = value if control_value is None else control_value
    return [Arm("baseline", lm),
            Arm("intervened", lm, lambda: latent_edit(lm, sae, site, list(latents), mode, value)),
            Arm("control", lm, lambda: latent_edit(lm, sae, site, list(control), mode, cv))]
