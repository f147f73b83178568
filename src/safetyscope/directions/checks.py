"""Validate contrast activations (harmful vs harmless) before any linear algebra.

Every extraction and geometry function takes two activation tensors, ``[n, d]`` (one layer) or
``[n, layers, d]`` (all layers), and does its maths in float64 on the CPU. The checks here turn
the ways such inputs go wrong (too few rows, widths that differ, NaN or inf from an fp16
overflow, unpaired rows where pairing is required) into one clear :class:`DirectionError`.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope.errors import SafetyscopeError


class DirectionError(SafetyscopeError):
    """Contrast activations are unusable (shape, size, non-finite values, degenerate classes)."""


def as_float64(x: Tensor, name: str) -> Tensor:
    """``x`` as a float64 CPU tensor, rejecting non-tensors, non-float dtypes and NaN/inf."""
    if not isinstance(x, Tensor):
        raise DirectionError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise DirectionError(f"{name} has dtype {x.dtype}; expected floating-point activations.")
    out = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(out).all():
        bad = (~torch.isfinite(out)).reshape(out.shape[0], -1).any(-1).nonzero().flatten().tolist()
        raise DirectionError(
            f"{name} contains NaN or inf in rows {bad[:10]}{' ...' if len(bad) > 10 else ''}. "
            "fp16 activations overflow easily: collect in float32 or drop those rows."
        )
    return out


def check_pair(
    harmful: Tensor, harmless: Tensor, *, paired: bool = False, min_rows: int = 2
) -> tuple[Float[Tensor, "n ..."], Float[Tensor, "m ..."]]:
    """Validate a harmful/harmless pair and return both as float64.

    Args:
        harmful: ``[n, d]`` or ``[n, layers, d]`` activations of the positive class.
        harmless: the same shape (apart from ``n``) for the negative class.
        paired: require equal row counts (rows are paired by index).
        min_rows: the fewest rows each set may have.

    Raises:
        DirectionError: on a wrong number of dimensions, differing widths or layer counts,
            too few rows, unequal row counts when ``paired``, or non-finite values.
    """
    a = as_float64(harmful, "harmful")
    b = as_float64(harmless, "harmless")
    for name, t in (("harmful", a), ("harmless", b)):
        if t.ndim not in (2, 3):
            raise DirectionError(
                f"{name} has shape {tuple(t.shape)}; expected [n, d] (one layer) or [n, layers, d]."
            )
        if t.shape[0] < min_rows:
            raise DirectionError(f"{name} has {t.shape[0]} rows; at least {min_rows} are needed.")
    if a.ndim != b.ndim:
        raise DirectionError(f"harmful is {a.ndim}-D {tuple(a.shape)} but harmless is {b.ndim}-D {tuple(b.shape)}.")
    if a.shape[1:] != b.shape[1:]:
        what = "width d" if a.ndim == 2 else "[layers, d]"
        raise DirectionError(
            f"harmful and harmless differ in {what}: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}."
        )
    if paired and a.shape[0] != b.shape[0]:
        raise DirectionError(
            f"This method pairs rows by index, but harmful has {a.shape[0]} rows and harmless {b.shape[0]}."
        )
    return a, b


def unit(
    v: Float[Tensor, " d"], what: str, scale: float = 1.0, tol: float = 1e-10
) -> tuple[Float[Tensor, " d"], float]:
    """Normalise ``v``; return ``(v / |v|, |v|)``.

    Raises :class:`DirectionError` when ``|v| <= tol * max(scale, 1e-300)``, i.e. when ``v`` is
    zero relative to ``scale`` (the typical norm of the activations it came from).
    """
    norm = float(v.norm())
    if not norm > tol * max(scale, 1e-300):
        raise DirectionError(
            f"The {what} is zero: the two classes are indistinguishable here (e.g. a layer whose "
            "activation is the same token embedding for every prompt). Leave this layer out."
        )
    return v / norm, norm


def check_vector(v: Tensor, what: str = "direction", *, nonzero: bool = True) -> Tensor:
    """Return ``v`` unchanged after checking it is a finite (and, by default, non-zero) tensor.

    Every consumer of a direction (steering, ablation, weight edits, CAST, patching with a
    direction) calls this, so a NaN, inf or all-zero vector is one clear error instead of NaN
    activations and 100% incoherent text.
    """
    if not isinstance(v, Tensor):
        raise DirectionError(f"The {what} must be a torch.Tensor, got {type(v).__name__}.")
    if v.numel() == 0:
        raise DirectionError(f"The {what} is empty (shape {tuple(v.shape)}).")
    if not v.is_floating_point():
        raise DirectionError(f"The {what} has dtype {v.dtype}; expected floating point.")
    bad = int((~torch.isfinite(v.detach())).sum())
    if bad:
        raise DirectionError(
            f"The {what} has {bad} NaN/inf values; it is unusable. Re-extract it (in float32 or float64).")
    if nonzero and not bool((v.detach() != 0).any()):
        raise DirectionError(f"The {what} is all zeros; a zero direction cannot be steered along or ablated.")
    return v


def check_scalar(value: float, what: str, *, positive: bool = False) -> float:
    """Return ``float(value)`` after checking it is finite (and ``> 0`` when ``positive``)."""
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise DirectionError(f"{what} must be a number, got {value!r}.") from exc
    if not math.isfinite(x):
        raise DirectionError(f"{what} is {x}; it must be a finite number. The direction file may be corrupt: "
                             "re-extract it.")
    if positive and not x > 0:
        raise DirectionError(f"{what} must be > 0, got {x}.")
    return x


def check_direction(direction: object, source: object = "direction") -> object:
    """Return ``direction`` after checking its vector, basis, ``mean_gap`` and ``raw_norm`` are usable.

    ``direction`` is a :class:`~safetyscope.directions.Direction` (checked by its attributes, so
    this module does not import it); ``source`` names it in messages (e.g. the file it came from).
    """
    check_vector(direction.vector, f"vector of {source}")  # type: ignore[attr-defined]
    basis = getattr(direction, "basis", None)
    if basis is not None:
        check_vector(basis, f"basis of {source}")
    check_scalar(direction.mean_gap, f"mean_gap of {source}")  # type: ignore[attr-defined]
    check_scalar(direction.raw_norm, f"raw_norm of {source}")  # type: ignore[attr-defined]
    return direction
