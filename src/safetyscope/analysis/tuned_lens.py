"""Tuned lens: one learned affine translator per layer before the final norm and unembedding.

Belrose et al. (2023): ``TunedLens_l(h) = LogitLens(h + A_l h + b_l)``, with ``A_l = 0, b_l = 0``
at initialisation (so training starts from the logit lens) and trained to minimise

    KL(p_final ‖ softmax(TunedLens_l(h_l)))

over token positions, where ``p_final`` is the model's own next-token distribution. Because the
logit lens is the special case ``A = 0, b = 0``, a trained translator should have lower KL to
the final distribution at every layer but the last (where the logit lens is already exact).
Training is seeded, minibatched and small: seconds on a CPU for the model organism.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from safetyscope import __version__
from safetyscope.analysis.lens import apply_lens, residuals
from safetyscope.data.prompts import PromptSet
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.threads import threads_for

_META_KEY = "safetyscope.tuned_lens"


@dataclass
class TunedLens:
    """Per-layer translators ``h ↦ h + A_l h + b_l`` (float32).

    Attributes:
        layers: the block indices (their ``resid_post``) the translators read.
        weight: ``[layers, d, d]`` matrices ``A_l``.
        bias: ``[layers, d]`` vectors ``b_l``.
        provenance: model fingerprint, training prompts, steps, seed, final losses.
    """

    layers: list[int]
    weight: Float[Tensor, "layers d d"]
    bias: Float[Tensor, "layers d"]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __call__(self, layer: int, h: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        """Translate residuals read at ``layer``."""
        if layer not in self.layers:
            raise SafetyscopeError(f"The tuned lens has no translator for layer {layer}; layers: {self.layers}.")
        i = self.layers.index(layer)
        w, b = self.weight[i].to(h.device, h.dtype), self.bias[i].to(h.device, h.dtype)
        return h + h @ w.T + b

    def save(self, path: str | Path) -> Path:
        """Write translators and provenance to one ``.safetensors`` file."""
        meta = {"layers": self.layers, "provenance": self.provenance}
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(path),
                  metadata={_META_KEY: json.dumps(meta)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TunedLens:
        """Read a file written by :meth:`save`."""
        with safe_open(str(path), "pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            if raw is None:
                raise SafetyscopeError(f"{path} is not a safetyscope tuned-lens file.")
            weight, bias = fh.get_tensor("weight"), fh.get_tensor("bias")
        meta = json.loads(raw)
        return cls(meta["layers"], weight, bias, meta["provenance"])


def _kl(lm: LoadedModel, h: Tensor, target_logp: Tensor) -> Tensor:
    """Mean over rows of ``KL(p_target ‖ softmax(lens(h)))``."""
    return F.kl_div(torch.log_softmax(apply_lens(lm, h), -1), target_logp, log_target=True, reduction="batchmean")


def _final_layer_rows(lm: LoadedModel, prompts: PromptSet | Sequence[str], layers: Sequence[int] | None
                      ) -> tuple[Tensor, list[int], Tensor]:
    """Residuals at ``layers`` (all tokens but BOS) and the model's final residual at the same tokens."""
    wanted = list(range(lm.n_layers)) if layers is None else sorted(set(layers))
    last = lm.n_layers - 1
    h, got = residuals(lm, prompts, sorted({*wanted, last}), "all", skip_first=True)
    return h[:, [got.index(x) for x in wanted]], wanted, h[:, got.index(last)]


def train_tuned_lens(
    lm: LoadedModel,
    prompts: PromptSet | Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    steps: int = 250,
    lr: float = 3e-3,
    batch_size: int = 512,
    seed: int = 0,
) -> TunedLens:
    """Train one translator per layer on every non-BOS token of ``prompts`` (Adam, seeded minibatches).

    Args:
        lm: the model (left unmodified; its norm and unembedding are used with detached weights).
        prompts: training prompts (chat-formatted; every token position is a training row).
        layers: blocks whose outputs get a translator (default all).
        steps: optimiser steps; lr: Adam learning rate; batch_size: rows per step.
        seed: seeds the minibatch order.
    """
    h, layer_list, final = _final_layer_rows(lm, prompts, layers)
    n, n_layers, d = h.shape
    gen = torch.Generator().manual_seed(seed)
    weight = torch.zeros(n_layers, d, d, device=lm.device, requires_grad=True)
    bias = torch.zeros(n_layers, d, device=lm.device, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    losses: list[float] = []
    with torch.inference_mode(False), torch.enable_grad(), threads_for(min(n, batch_size) * lm.vocab_size):
        h, final = h.clone().to(lm.device, torch.float32), final.clone().to(lm.device, torch.float32)
        for _ in range(steps):
            idx = torch.randint(n, (min(n, batch_size),), generator=gen).to(lm.device)
            with torch.no_grad():
                target = torch.log_softmax(apply_lens(lm, final[idx]), -1)
            x = h[idx]
            loss = sum(_kl(lm, x[:, i] + x[:, i] @ weight[i].T + bias[i], target) for i in range(n_layers))
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            losses.append(float(loss.detach()) / n_layers)  # type: ignore[union-attr]
    pset = prompts if isinstance(prompts, PromptSet) else PromptSet(tuple(prompts))
    prov = {"model_fingerprint": lm.fingerprint(), "prompts": pset.name, "prompt_hash": pset.hash,
            "n_rows": n, "steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
            "final_loss": losses[-1] if losses else None, "safetyscope_version": __version__}
    return TunedLens(layer_list, weight.detach().cpu(), bias.detach().cpu(), prov)


@dataclass
class LayerKL:
    """KL to the model's final next-token distribution at one layer, for both lenses (nats)."""

    layer: int
    logit_lens_kl: float
    tuned_lens_kl: float


@dataclass
class LensComparison:
    """Per-layer KL of the logit lens and the tuned lens on held-out prompts."""

    layers: list[LayerKL]
    n_tokens: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LensComparison:
        """Inverse of :meth:`to_dict`."""
        return cls([LayerKL(**x) for x in data["layers"]], data["n_tokens"], data.get("provenance", {}))

    def figure(self) -> dict[str, Any]:
        """A ``curves`` spec: KL to the final distribution by layer, tuned lens vs logit lens (the baseline)."""
        return {"kind": "curves", "x": [r.layer for r in self.layers], "xlabel": "layer", "ylabel": "KL(final || lens), nats",
                "title": f"Tuned vs logit lens ({self.n_tokens} held-out tokens)",
                "series": [{"label": "tuned lens", "y": [r.tuned_lens_kl for r in self.layers], "role": "effect"},
                           {"label": "logit lens", "y": [r.logit_lens_kl for r in self.layers], "role": "baseline"}]}


def tuned_lens_cache(lm: LoadedModel) -> Path:
    """Where ``safetyscope lens tuned`` caches a model's trained lens (keyed by the weights' fingerprint)."""
    from safetyscope.paths import cache_dir

    return cache_dir("tuned-lens") / f"{lm.fingerprint()}.safetensors"


def cached_tuned_lens(lm: LoadedModel) -> TunedLens | None:
    """The cached tuned lens of ``lm`` (:func:`tuned_lens_cache`), or ``None`` when none was trained."""
    path = tuned_lens_cache(lm)
    return TunedLens.load(path) if path.is_file() else None


@torch.no_grad()
def compare_lenses(lm: LoadedModel, tuned: TunedLens, prompts: PromptSet | Sequence[str]) -> LensComparison:
    """KL(final ‖ lens) per layer for the logit lens and ``tuned``, on every non-BOS token of ``prompts``."""
    h, layer_list, final = _final_layer_rows(lm, prompts, tuned.layers)
    with threads_for(h.shape[0] * lm.vocab_size):
        target = torch.log_softmax(apply_lens(lm, final), -1)
        out = [LayerKL(layer, float(_kl(lm, h[:, i], target)), float(_kl(lm, tuned(layer, h[:, i].to(lm.device)), target)))
               for i, layer in enumerate(layer_list)]
    return LensComparison(out, int(h.shape[0]), {"model_fingerprint": lm.fingerprint(),
                                                 "tuned_lens": tuned.provenance, "safetyscope_version": __version__})
