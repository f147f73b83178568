"""Train a per-layer transcoder on (MLP input, MLP output) rows with the SAE machinery.

The loop is the SAE trainer's with a different target: the encoder reads the MLP input ``x`` and
the decoder predicts the MLP output ``y``; loss ``||y - y_hat||^2`` plus the architecture's term
from :mod:`safetyscope.sae.losses` (TopK: Gao et al.'s auxiliary loss on dead latents; JumpReLU:
the straight-through L0 penalty). Inputs and targets are scaled by constants so that
``E||x|| = E||y|| = sqrt(d)``; ``b_dec`` starts at the mean target; the scales are folded into the
weights at the end (the saved transcoder reads and writes raw activations). Learning rate: the SAE
trainer's warm-up + cosine (:func:`safetyscope.sae.lr_factor`). Dead latents: no activation for
``dead_tokens`` tokens. Seeded; rows are drawn in a seeded random order.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.batching import progress_bar
from safetyscope.errors import OptionError
from safetyscope.sae.losses import aux_topk_loss, jumprelu_ste, mse_sum, step_ste, topk_acts
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.sae.train import TrainConfig, lr_factor
from safetyscope.transcoders.model import transcoder_config

#: Architectures a transcoder can be trained with.
TRANSCODER_ARCHITECTURES: tuple[str, ...] = ("topk", "jumprelu")


@dataclass
class TranscoderResult:
    """A trained transcoder (raw units), its loss curve, throughput and provenance."""

    transcoder: SparseAutoencoder
    config: TrainConfig
    layer: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        """Training rows per second."""
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (weights are saved separately with :func:`safetyscope.sae.save_sae`)."""
        return {
            "config": asdict(self.config),
            "layer": self.layer,
            "history": self.history,
            "seconds": self.seconds,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens_per_second,
            "provenance": self.provenance,
        }


def train_transcoder(
    x: Tensor,
    y: Tensor,
    layer: int,
    cfg: TrainConfig,
    *,
    progress: bool = False,
    log_every: int = 50,
    model_name: str | None = None,
) -> TranscoderResult:
    """Train a PLT mapping rows ``x`` ``[n, d]`` (MLP inputs) to ``y`` ``[n, d]`` (MLP outputs)."""
    if cfg.architecture not in TRANSCODER_ARCHITECTURES:
        raise OptionError(
            f"Transcoder architecture {cfg.architecture!r} is not one of {TRANSCODER_ARCHITECTURES}."
        )
    if x.shape != y.shape or x.ndim != 2:
        raise OptionError(
            f"Transcoder rows must be two equal [n, d] tensors, got {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if len(x) < cfg.batch_size:
        raise OptionError(f"{len(x)} rows are fewer than one batch ({cfg.batch_size}); stream more tokens.")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    d = x.shape[1]
    x, y = x.float(), y.float()
    s_in = math.sqrt(d) / float(x.norm(dim=-1).mean().clamp_min(1e-12)) if cfg.normalize else 1.0
    s_out = math.sqrt(d) / float(y.norm(dim=-1).mean().clamp_min(1e-12)) if cfg.normalize else 1.0
    arch = cfg.architecture
    tc = SparseAutoencoder.random(
        transcoder_config(
            d, cfg.d_sae, layer, architecture=arch, k=cfg.k if arch == "topk" else None, model_name=model_name
        ),
        cfg.seed,
    )
    log_theta = torch.nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.init_threshold)))
    with torch.no_grad():
        tc.b_dec.copy_(y.mean(0) * s_out)
    groups: list[dict[str, Any]] = [{"params": [tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec], "mult": 1.0}]
    if arch == "jumprelu":
        groups.append({"params": [log_theta], "mult": cfg.threshold_lr_mult})
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long)
    k_aux = cfg.aux_k or max(1, d // 2)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(x), generator=gen)
    pos, history = 0, []
    with progress_bar(f"training layer-{layer} transcoder", cfg.steps, progress) as advance:
        for i in range(cfg.steps):
            if pos + cfg.batch_size > len(order):
                order, pos = torch.randperm(len(x), generator=gen), 0
            rows = order[pos : pos + cfg.batch_size]
            pos += cfg.batch_size
            xb, yb = x[rows] * s_in, y[rows] * s_out
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(i, cfg) * group["mult"]
            sparsity = min(1.0, (i + 1) / max(1, int(cfg.sparsity_warmup_frac * cfg.steps)))
            pre = xb @ tc.W_enc + tc.b_enc
            f = topk_acts(pre, cfg.k) if arch == "topk" else jumprelu_ste(pre, log_theta.exp(), cfg.bandwidth)
            y_hat = f @ tc.W_dec + tc.b_dec
            mse = mse_sum(yb, y_hat)
            if arch == "topk":
                extra = cfg.aux_coeff * aux_topk_loss(
                    pre, yb - y_hat, tc.W_dec, since_fired > cfg.dead_tokens, k_aux
                )
            else:
                extra = sparsity * cfg.l0_coeff * step_ste(pre, log_theta.exp(), cfg.bandwidth).sum()
            loss = (mse + extra) / len(xb)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            fired = (f > 0).any(0)
            since_fired += len(xb)
            since_fired[fired] = 0
            if i % log_every == 0 or i == cfg.steps - 1:
                history.append(
                    {
                        "step": float(i),
                        "mse": mse.item() / len(xb),
                        "extra": extra.item() / len(xb),
                        "l0": float((f > 0).sum()) / len(xb),
                    }
                )
            advance(1)
    with torch.no_grad():
        if arch == "jumprelu":
            assert tc.threshold is not None
            tc.threshold.copy_(log_theta.detach().exp())
        tc.W_enc.mul_(s_in)
        tc.W_dec.div_(s_out)
        tc.b_dec.div_(s_out)
    tc.cfg.metadata.update({"input_scale": s_in, "output_scale": s_out})
    prov = {"rows": len(x), "safetyscope_version": __version__}
    return TranscoderResult(
        tc, cfg, layer, history, time.perf_counter() - t0, cfg.steps * cfg.batch_size, prov
    )
