"""The sparse autoencoder: ReLU, TopK and JumpReLU encoders over one shared linear decoder.

With ``x`` an activation ``[..., d_in]`` (SAELens conventions, so weights load unchanged)::

    pre   = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc        W_enc [d_in, d_sae]
    f     = ReLU(pre)                          architecture "standard" (ReLU + L1)
          = ReLU(top-k of pre, others 0)       architecture "topk"
          = pre * 1[pre > threshold]           architecture "jumprelu" (threshold [d_sae] > 0)
    x_hat = f @ W_dec + b_dec                                          W_dec [d_sae, d_in]

``normalize_activations="constant_norm_rescale"`` scales each input to norm ``sqrt(d_in)`` and
the reconstruction back; ``"layer_norm"`` centres and divides each input by its standard
deviation and undoes it on the reconstruction (both as SAELens does at inference). A BatchTopK SAE is trained as a batch-level top-k and saved as a JumpReLU
with its learned threshold (:mod:`safetyscope.sae.train`), so inference knows three encoders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from safetyscope.errors import ConfigError

#: Architectures an SAE can have at inference (BatchTopK is saved as ``jumprelu``).
ARCHITECTURES: tuple[str, ...] = ("standard", "topk", "jumprelu")
#: Input normalisations applied at inference (training-time scaling is folded into the weights).
NORMALIZATIONS: tuple[str, ...] = ("none", "constant_norm_rescale", "layer_norm")


@dataclass
class SAEConfig:
    """Shape and inference behaviour of one SAE, plus where it reads (``site``) and its provenance."""

    architecture: str
    d_in: int
    d_sae: int
    k: int | None = None
    dtype: str = "float32"
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    site: str | None = None  # Site.key, e.g. "L1.resid_post"
    hook_name: str | None = None  # the SAELens / TransformerLens hook name of the site
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"SAE architecture {self.architecture!r} is not one of {ARCHITECTURES} "
                              "(a BatchTopK SAE is saved as jumprelu).")
        if self.d_in < 1 or self.d_sae < 1:
            raise ConfigError(f"SAE sizes must be >= 1, got d_in={self.d_in}, d_sae={self.d_sae}.")
        if self.architecture == "topk" and (self.k is None or not 1 <= self.k <= self.d_sae):
            raise ConfigError(f"A topk SAE needs 1 <= k <= d_sae ({self.d_sae}), got k={self.k}.")
        if self.normalize_activations not in NORMALIZATIONS:
            raise ConfigError(f"normalize_activations {self.normalize_activations!r} is not supported at inference; "
                              f"use one of {NORMALIZATIONS} (fold a constant scaling factor into the weights).")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


class SparseAutoencoder(nn.Module):
    """An SAE with SAELens-shaped parameters (see the module docstring for the formulas)."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = getattr(torch, cfg.dtype)
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype))
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype), requires_grad=False) \
            if cfg.architecture == "jumprelu" else None

    @classmethod
    def random(cls, cfg: SAEConfig, seed: int = 0) -> SparseAutoencoder:
        """Seeded init: unit-norm decoder rows, encoder = decoder transpose, zero biases."""
        sae = cls(cfg)
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(cfg.d_sae, cfg.d_in, generator=gen, dtype=torch.float64)
        w = w / w.norm(dim=1, keepdim=True)
        with torch.no_grad():
            sae.W_dec.copy_(w.to(sae.W_dec.dtype))
            sae.W_enc.copy_(w.T.to(sae.W_enc.dtype))
        return sae

    def state_tensors(self) -> dict[str, Tensor]:
        """The SAELens weight tensors (``threshold`` only for JumpReLU)."""
        out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return {k: v.detach().contiguous() for k, v in out.items()}

    def _norm(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token ``(shift, scale)`` with normalised ``x = (x - shift) * scale``."""
        mode = self.cfg.normalize_activations
        zero = x.new_zeros(())
        if mode == "constant_norm_rescale":
            return zero, (self.cfg.d_in ** 0.5) / x.norm(dim=-1, keepdim=True)
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            return mu, 1.0 / ((x - mu).std(dim=-1, keepdim=True) + 1e-5)
        return zero, x.new_ones(())

    def pre_acts(self, x: Tensor) -> Tensor:
        """Encoder pre-activations ``[..., d_sae]`` (after input normalisation)."""
        x = x.to(self.W_enc.dtype)
        shift, scale = self._norm(x)
        x = (x - shift) * scale
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """Latent activations from pre-activations, by architecture."""
        if self.cfg.architecture == "standard":
            return torch.relu(pre)
        if self.cfg.architecture == "topk":
            assert self.cfg.k is not None
            top = pre.topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        assert self.threshold is not None
        return pre.relu() * (pre > self.threshold)

    def encode(self, x: Tensor) -> Tensor:
        """Sparse latents ``[..., d_sae]`` of activations ``x`` ``[..., d_in]``."""
        return self.activate(self.pre_acts(x))

    def decode(self, f: Tensor, x: Tensor | None = None) -> Tensor:
        """Reconstruction ``f @ W_dec + b_dec``; with a per-token normalisation, ``x`` gives its undo."""
        out = f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec
        if self.cfg.normalize_activations != "none":
            if x is None:
                raise ConfigError(f"This SAE normalises inputs per token ({self.cfg.normalize_activations}); "
                                  "pass the input x to decode() to undo it.")
            shift, scale = self._norm(x.to(self.W_dec.dtype))
            out = out / scale + shift
        return out

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of ``x``."""
        return self.decode(self.encode(x), x)

    def fold_scale(self, scale: float) -> None:
        """Fold a constant input scale into the weights: the SAE trained on ``x * scale`` now reads ``x``.

        ``W_enc *= scale``, ``b_dec /= scale``, ``W_dec /= scale``: the latents are unchanged and the
        reconstruction comes out in the original units.
        """
        with torch.no_grad():
            self.W_enc.mul_(scale)
            self.b_dec.div_(scale)
            self.W_dec.div_(scale)

    @property
    def decoder_directions(self) -> Tensor:
        """Unit-norm decoder rows ``[d_sae, d_in]`` (each latent's direction in the residual stream)."""
        w = self.W_dec.detach().double()
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
