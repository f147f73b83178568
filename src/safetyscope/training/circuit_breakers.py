"""Circuit breakers: representation rerouting (Zou et al. 2024, "Improving Alignment and Robustness
with Circuit Breakers", arXiv:2406.04313; compendium 6.6).

The tuned model's residual stream at chosen layers is pushed away from a *frozen* copy's on the
circuit-breaker set (harmful requests followed by a compliance answer: the "harmful process"),
while a retain loss keeps it equal to the frozen copy's on the retain set (harmless requests with
helpful answers, and harmful requests with refusals):

    L_rr     = mean_{l, t ∈ answer}  ReLU(cos(h_l,t, h⁰_l,t))          ("relu-cosine", the paper's)
             = mean_{l, t ∈ answer}  cos(h_l,t, h⁰_l,t)                ("cosine": maximise 1 - cos)
    L_retain = mean_{l, t ∈ real}    ‖h_l,t − h⁰_l,t‖₂
    L        = c_rr(s) · L_rr + c_ret(s) · L_retain,
    c_rr(s)  = α (1 − s / 2S),   c_ret(s) = λ α s / 2S                 (s: step, S: steps)

λ = 1 is the paper's schedule; a larger λ (``--cb-retain``) protects harmless behaviour more.
``h`` is the tuned model's ``resid_pre`` of each chosen layer, ``h⁰`` the frozen model's on the
same ids. Rerouting acts on the compliance answer's positions only (the request positions are
shared with the refusal examples of the retain set, so rerouting them would fight the retain
loss). The frozen model is a deep copy for full fine-tuning and the same model with its LoRA
adapters switched off for LoRA (no second copy of a large model).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from safetyscope.activations import Site, record
from safetyscope.activations.hooks import run_until_stopped
from safetyscope.errors import OptionError
from safetyscope.model.architectures import ResolvedArchitecture, resolve_architecture
from safetyscope.model.loading import LoadedModel
from safetyscope.training.tokens import IGNORE_INDEX, Batch, Encoded, collate

__all__ = [
    "CB_LOSSES",
    "FrozenReference",
    "circuit_breaker_layers",
    "circuit_breaker_loss",
    "coefficients",
    "rerouting_loss",
    "retain_loss",
    "states",
]

CB_LOSSES: tuple[str, ...] = ("relu-cosine", "cosine")


def circuit_breaker_layers(n_layers: int, layers: Sequence[int] | None = None) -> list[int]:
    """The layers whose ``resid_pre`` is rerouted: ``layers`` checked, or about 1/3 and 2/3 of depth."""
    if layers:
        bad = [x for x in layers if not 1 <= x < n_layers]
        if bad:
            raise OptionError(
                f"--cb-layers {bad} outside 1..{n_layers - 1} (resid_pre of block 0 is the embeddings)."
            )
        return sorted(set(layers))
    return sorted({min(n_layers - 1, max(1, round(n_layers * f))) for f in (1 / 3, 2 / 3)})


def coefficients(step: int, steps: int, alpha: float, retain: float = 1.0) -> tuple[float, float]:
    """``(c_rr, c_retain)`` at ``step`` of ``steps``: rerouting fades from α to α/2, retain grows to λα/2."""
    t = step / (2 * max(1, steps))
    return alpha * (1 - t), retain * alpha * t


def rerouting_loss(tuned: Tensor, frozen: Tensor, mask: Tensor, kind: str = "relu-cosine") -> Tensor:
    """Mean over the ``mask``-ed positions of ``ReLU(cos)`` (or ``cos``) between tuned and frozen states.

    ``tuned``, ``frozen``: ``[b, p, d]``; ``mask``: bool ``[b, p]``.
    """
    if kind not in CB_LOSSES:
        raise OptionError(f"--cb-loss {kind!r} is not one of {', '.join(CB_LOSSES)}.")
    cos = torch.nn.functional.cosine_similarity(tuned.float(), frozen.float(), dim=-1, eps=1e-8)
    if kind == "relu-cosine":
        cos = torch.relu(cos)
    m = mask.to(cos.dtype)
    return (cos * m).sum() / m.sum().clamp_min(1.0)


def retain_loss(tuned: Tensor, frozen: Tensor, mask: Tensor) -> Tensor:
    """Mean over the ``mask``-ed positions of the L2 distance between tuned and frozen states."""
    dist = (tuned.float() - frozen.float()).norm(dim=-1)
    m = mask.to(dist.dtype)
    return (dist * m).sum() / m.sum().clamp_min(1.0)


def _lora_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "enable_adapters")]


class FrozenReference:
    """The model as it was before training: a frozen deep copy, or the LoRA model with adapters off."""

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        self.lora: list[Any] = _lora_layers(lm.model)  # peft tuner layers (enable_adapters)
        self.model: nn.Module = lm.model
        self.arch: ResolvedArchitecture = lm.arch
        if not self.lora:
            self.model = copy.deepcopy(lm.model).eval().requires_grad_(False)
            self.arch = resolve_architecture(self.model, lm.arch.map)

    @contextmanager
    def _adapters_off(self) -> Iterator[None]:
        trainable = {id(p): p.requires_grad for m in self.lora for p in m.parameters()}
        for m in self.lora:
            m.enable_adapters(False)
        try:
            yield
        finally:
            for m in self.lora:
                m.enable_adapters(True)
                for p in m.parameters():
                    p.requires_grad_(trainable[id(p)])

    def states(self, ids: Tensor, sites: Sequence[Site]) -> dict[Site, Tensor]:
        """The frozen model's residual at ``sites`` (no gradient)."""
        with torch.no_grad():
            if self.lora:
                with self._adapters_off():
                    return states(self.model, self.arch, ids, sites)
            return states(self.model, self.arch, ids, sites)


def states(
    model: nn.Module, arch: ResolvedArchitecture, ids: Tensor, sites: Sequence[Site]
) -> dict[Site, Tensor]:
    """Residual stream of ``model`` at ``sites`` for ``ids`` (gradients kept; stops after the last site)."""
    out: dict[Site, Tensor] = {}

    def capture(site: Site, x: Tensor) -> None:
        out[site] = x

    with record(arch, sites, capture):
        run_until_stopped(model, input_ids=ids)
    return out


def _real(batch: Batch, items: Sequence[Encoded], use_target: bool) -> Tensor:
    mask = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    for i, it in enumerate(items):
        answer = it.target if use_target and it.target is not None else it.response
        mask[i, : len(it.prompt) + len(answer)] = True
    return mask


def circuit_breaker_loss(
    lm: LoadedModel,
    reference: FrozenReference,
    items: Sequence[Encoded],
    layers: Sequence[int],
    *,
    kind: str,
    coef: tuple[float, float],
    pad_id: int,
) -> tuple[Tensor, dict[str, float]]:
    """``c_rr · L_rr + c_ret · L_retain`` on one batch (see the module docstring) and its parts."""
    device = next(lm.model.parameters()).device
    sites = [Site(x) for x in layers]
    c_rr, c_ret = coef
    total = torch.zeros((), device=device)
    parts: dict[str, float] = {}
    harm = [it for it in items if it.harmful and it.target is not None]
    if harm:
        b = collate(harm, pad_id, use_target=True)
        ids = b.input_ids.to(device)
        mask = (b.labels != IGNORE_INDEX).to(device)
        tuned, frozen = states(lm.model, lm.arch, ids, sites), reference.states(ids, sites)
        rr = torch.stack([rerouting_loss(tuned[s], frozen[s], mask, kind) for s in sites]).mean()
        total = total + c_rr * rr
        parts["rerouting"] = float(rr.detach())
    b = collate(items, pad_id)
    ids = b.input_ids.to(device)
    mask = _real(b, items, use_target=False).to(device)
    tuned, frozen = states(lm.model, lm.arch, ids, sites), reference.states(ids, sites)
    ret = torch.stack([retain_loss(tuned[s], frozen[s], mask) for s in sites]).mean()
    total = total + c_ret * ret
    parts["retain"] = float(ret.detach())
    return total, parts
