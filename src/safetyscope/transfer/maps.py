"""Maps from a source model's residual stream (layer L) to a target's (layer M).

* :class:`AffineMap`: ``y = M x + b``. Fit in closed form (:func:`fit_affine`, ridge least squares
  with an unpenalised bias) or by SGD (:func:`~safetyscope.transfer.train.train_map`). Its
  :meth:`AffineMap.pseudo_inverse` is the post's ``A†(y) = M⁺ (y − b)`` (target to source).
* :class:`AutoencoderMap`: ``c = ReLU(W1 x + b1)`` (``hidden`` coefficients, default ``d_src``),
  ``y = W2 c = Σ_i c_i v_i`` (the columns of ``W2`` are features in the target space).

Saved as ``map.safetensors`` (weights) plus ``map.json`` (:class:`MapConfig`: kind, widths, both
models' specs, fingerprints, layers and sites, and how it was fit).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from safetyscope.transfer.pairs import TransferError

MAP_KINDS = ("affine", "autoencoder")
WEIGHTS_FILE, CONFIG_FILE = "map.safetensors", "map.json"


@dataclass
class MapConfig:
    """What a saved map is: its kind and widths, the two models and sites it connects, how it was fit."""

    kind: str
    d_in: int
    d_out: int
    hidden: int | None = None
    src: dict[str, Any] = field(default_factory=dict)  # spec, fingerprint, layer, point
    tgt: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)  # method, ridge/steps/lr/seed, prompt hash, ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MapConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        try:
            return cls(**d)
        except TypeError as exc:
            raise TransferError(f"{CONFIG_FILE} is not a safetyscope map config ({exc}).") from exc


class AffineMap(nn.Module):
    """``y = M x + b`` with ``M`` of shape ``[d_out, d_in]``."""

    kind = "affine"

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[..., d_in]`` to ``[..., d_out]``."""
        return self.linear(x.to(self.linear.weight.dtype))

    def pseudo_inverse(self, rcond: float = 1e-6) -> AffineMap:
        """``A†(y) = M⁺ (y − b)``: the affine map back from target to source space."""
        w = self.linear.weight.detach().double()
        w_pinv = torch.linalg.pinv(w, rtol=rcond)
        inv = AffineMap(w.shape[0], w.shape[1])
        with torch.no_grad():
            inv.linear.weight.copy_(w_pinv.float())
            inv.linear.bias.copy_((-w_pinv @ self.linear.bias.detach().double()).float())
        return inv


class AutoencoderMap(nn.Module):
    """``c = ReLU(W1 x + b1)``, ``y = W2 c`` (no decoder bias, as in the post)."""

    kind = "autoencoder"

    def __init__(self, d_in: int, d_out: int, hidden: int | None = None) -> None:
        super().__init__()
        self.hidden = hidden or d_in
        self.encoder = nn.Linear(d_in, self.hidden)
        self.decoder = nn.Linear(self.hidden, d_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[..., d_in]`` to ``[..., d_out]``."""
        return self.decoder(torch.relu(self.encoder(x.to(self.encoder.weight.dtype))))


ActivationMap = AffineMap | AutoencoderMap


def make_map(kind: str, d_in: int, d_out: int, hidden: int | None = None, seed: int = 0) -> ActivationMap:
    """A freshly initialised map of ``kind`` (seeded: the same seed gives the same weights)."""
    if kind not in MAP_KINDS:
        raise TransferError(f"Unknown map kind {kind!r}; use one of {', '.join(MAP_KINDS)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AffineMap(d_in, d_out) if kind == "affine" else AutoencoderMap(d_in, d_out, hidden)


def fit_affine(x: Tensor, y: Tensor, ridge: float = 1e-3) -> AffineMap:
    """Closed-form ridge least squares: ``M = Yc^T Xc (Xc^T Xc + λ n I)^{-1}``, ``b = ȳ − M x̄``.

    ``λ`` is relative: the penalty is ``ridge · n · mean(diag(Xc^T Xc / n))`` so it does not depend
    on the scale of the activations. Solved in float64.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise TransferError(f"fit_affine needs >= 2 paired rows, got {x.shape[0]} and {y.shape[0]}.")
    xd, yd = x.double(), y.double()
    mx, my = xd.mean(0), yd.mean(0)
    xc, yc = xd - mx, yd - my
    gram = xc.T @ xc
    lam = ridge * float(torch.diagonal(gram).mean().clamp_min(1e-12))
    gram = gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype)
    w = torch.linalg.solve(gram, xc.T @ yc).T  # [d_out, d_in]
    m = AffineMap(x.shape[1], y.shape[1])
    with torch.no_grad():
        m.linear.weight.copy_(w.float())
        m.linear.bias.copy_((my - w @ mx).float())
    return m


def save_map(m: ActivationMap, config: MapConfig, out: Path) -> Path:
    """Write ``out/map.safetensors`` and ``out/map.json`` (the folder must exist)."""
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()}, str(out / WEIGHTS_FILE)
    )
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    return out


def load_map(folder: Path) -> tuple[ActivationMap, MapConfig]:
    """Load a map written by :func:`save_map` (safetensors only; never pickle)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise TransferError(
            f"{folder} holds no map ({CONFIG_FILE} + {WEIGHTS_FILE}); write one with "
            "`safetyscope transfer fit`."
        )
    config = MapConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    m = make_map(config.kind, config.d_in, config.d_out, config.hidden)
    state = load_file(str(folder / WEIGHTS_FILE))
    try:
        m.load_state_dict(state)
    except RuntimeError as exc:
        raise TransferError(
            f"{folder / WEIGHTS_FILE} does not match {CONFIG_FILE} ({str(exc).splitlines()[0]})."
        ) from exc
    return m.eval(), config
