"""Train an SAE on an :class:`~safetyscope.sae.stream.ActivationStore`: one loop for five architectures
(``gsae``: ReLU + L1 with the graph Laplacian penalty of :mod:`safetyscope.sae.graph`).

Before training, activations are scaled by one constant so that ``E||x|| = sqrt(d_in)``
(SAELens' ``expected_average_only_in``) and ``b_dec`` starts at their mean; after training the
scale is folded into the weights (:meth:`SparseAutoencoder.fold_scale`), so the saved SAE reads raw
activations. The learning rate warms up linearly, then decays on a cosine to ``min_lr_frac``; the
sparsity coefficient warms up linearly. Dead latents (no activation for ``dead_tokens`` tokens)
feed the TopK / BatchTopK auxiliary loss, or are resampled (ReLU and JumpReLU; Bricken et al.
2023: decoder row = a high-loss input's residual, encoder row = 0.2 x mean live encoder norm,
optimizer state reset). Everything random is seeded; with ``torch.distributed`` initialised, every
rank reads the same batches and keeps rows ``rank::world``, and gradients are summed
(:mod:`safetyscope.sae.losses` divides by the global batch), so ranks reproduce one process.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.distributed import world
from safetyscope.batching import progress_bar
from safetyscope.errors import OptionError
from safetyscope.sae.graph import coactivation_graph, laplacian_penalty, normalized_laplacian
from safetyscope.sae.losses import aux_topk_loss, batch_threshold, jumprelu_ste, mse_sum, step_ste, topk_acts
from safetyscope.sae.model import SAEConfig, SparseAutoencoder
from safetyscope.sae.stream import ActivationStore

#: Architectures that can be trained (``batchtopk`` is saved as ``jumprelu``).
TRAIN_ARCHITECTURES: tuple[str, ...] = ("topk", "batchtopk", "standard", "jumprelu", "gsae")
#: Architectures trained with ReLU + L1 (``gsae`` adds the graph Laplacian penalty; saved as ``standard``).
_RELU_L1 = ("standard", "gsae")


@dataclass
class TrainConfig:
    """Hyper-parameters of one SAE training run."""

    architecture: str = "topk"
    d_sae: int = 1024
    k: int = 32
    l1_coeff: float = 1e-2  # standard
    l0_coeff: float = 1e-2  # jumprelu
    graph_coeff: float = 0.1  # gsae: lambda_g of the Laplacian penalty
    graph_k: int = 8  # gsae: neighbours kept per neuron in the co-activation graph
    bandwidth: float = 0.05  # jumprelu straight-through kernel width (normalised units)
    init_threshold: float = 0.5  # jumprelu initial threshold (normalised units)
    threshold_lr_mult: float = 10.0  # jumprelu: lr of log(threshold) relative to lr (Adam is scale-free)
    aux_coeff: float = 1 / 32
    aux_k: int | None = None  # default d_in // 2
    dead_tokens: int = 20000
    resample_every: int = 0  # standard / jumprelu: steps between resamplings (0: never)
    lr: float = 1e-3
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    sparsity_warmup_frac: float = 0.1
    batch_size: int = 512
    steps: int = 2000
    buffer_rows: int = 32768
    normalize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in TRAIN_ARCHITECTURES:
            raise OptionError(f"--arch {self.architecture!r} is not one of {', '.join(TRAIN_ARCHITECTURES)}.")
        for name in ("d_sae", "k", "batch_size", "steps", "dead_tokens", "buffer_rows"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.architecture in ("topk", "batchtopk") and self.k > self.d_sae:
            raise OptionError(f"k ({self.k}) must be <= d_sae ({self.d_sae}).")
        if self.graph_coeff < 0 or not math.isfinite(self.graph_coeff):
            raise OptionError(f"graph_coeff must be a finite number >= 0, got {self.graph_coeff}.")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise OptionError(f"lr must be a finite number > 0, got {self.lr}.")


@dataclass
class TrainResult:
    """The trained SAE (reading raw activations), its loss curve and provenance."""

    sae: SparseAutoencoder
    config: TrainConfig
    scale: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        """Training throughput."""
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the weights are saved separately, see :mod:`safetyscope.sae.saelens`)."""
        return {"config": asdict(self.config), "scale": self.scale, "history": self.history,
                "seconds": self.seconds, "tokens": self.tokens, "provenance": self.provenance}


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_frac`` of the steps, then cosine decay to ``min_lr_frac``."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t))


def sae_config_for(store: ActivationStore, cfg: TrainConfig) -> SAEConfig:
    """The inference config of the SAE that ``cfg`` trains on ``store`` (BatchTopK becomes JumpReLU)."""
    arch = {"batchtopk": "jumprelu", "gsae": "standard"}.get(cfg.architecture, cfg.architecture)
    meta: dict[str, Any] = {"trained_architecture": cfg.architecture}
    if cfg.architecture == "gsae":
        meta.update(graph_coeff=cfg.graph_coeff, graph_k=cfg.graph_k, graph="co-activation, normalised Laplacian")
    return SAEConfig(arch, store.d_in, cfg.d_sae, k=cfg.k if arch == "topk" else None, site=store.site.key,
                     metadata=meta)


def _gather(t: Tensor) -> list[Tensor]:
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return out


class _Trainer:
    def __init__(self, store: ActivationStore, cfg: TrainConfig) -> None:
        self.cfg, self.store = cfg, store
        self.rank, self.world = world()
        d_in = store.d_in
        self.sae = SparseAutoencoder.random(sae_config_for(store, cfg), cfg.seed)
        self.log_theta = torch.nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.init_threshold)))
        self.theta_ema = torch.zeros(())
        self.since_fired = torch.zeros(cfg.d_sae, dtype=torch.long)
        self.k_aux = cfg.aux_k or max(1, d_in // 2)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.scale, mean, sample = self._stats()
        self.lap = normalized_laplacian(coactivation_graph(sample, cfg.graph_k)).float() \
            if cfg.architecture == "gsae" else None
        with torch.no_grad():
            self.sae.b_dec.copy_(mean * self.scale)
        groups: list[dict[str, Any]] = [{"params": [self.sae.W_enc, self.sae.b_enc, self.sae.W_dec, self.sae.b_dec],
                                         "mult": 1.0}]
        if cfg.architecture == "jumprelu":
            groups.append({"params": [self.log_theta], "mult": cfg.threshold_lr_mult})
        self.opt = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999))

    def _stats(self) -> tuple[float, Tensor, Tensor]:
        n = min(self.store.n_rows, 8 * self.cfg.batch_size)
        rows = next(self.store.batches(n, seed=self.cfg.seed + 7, buffer_rows=max(n, self.cfg.buffer_rows)))
        scale = math.sqrt(self.store.d_in) / float(rows.norm(dim=-1).mean()) if self.cfg.normalize else 1.0
        return scale, rows.mean(0), rows

    def loss(self, x: Tensor, batch: int, sparsity: float) -> tuple[Tensor, dict[str, float], Tensor]:
        cfg, sae = self.cfg, self.sae
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        aux = x.new_zeros(())
        if cfg.architecture == "topk":
            f = topk_acts(pre, cfg.k)
        elif cfg.architecture == "batchtopk":
            relu = pre.relu()
            t = batch_threshold(relu, cfg.k * batch, _gather if self.world > 1 else None)
            f = relu * (relu >= t) * (relu > 0)
            self._last_min = t
        elif cfg.architecture in _RELU_L1:
            f = pre.relu()
        else:
            theta = self.log_theta.exp()
            f = jumprelu_ste(pre, theta, cfg.bandwidth)
        x_hat = f @ sae.W_dec + sae.b_dec
        mse = mse_sum(x, x_hat)
        sparse = x.new_zeros(())
        if cfg.architecture in ("topk", "batchtopk"):
            aux = cfg.aux_coeff * aux_topk_loss(pre, x - x_hat, sae.W_dec, self.since_fired > cfg.dead_tokens, self.k_aux)
        elif cfg.architecture in _RELU_L1:
            sparse = sparsity * cfg.l1_coeff * f.sum()
        else:
            sparse = sparsity * cfg.l0_coeff * step_ste(pre, self.log_theta.exp(), cfg.bandwidth).sum()
        total = (mse + aux + sparse) / batch
        logs = {"mse": mse.item() / batch, "aux": aux.item() / batch, "sparsity": sparse.item() / batch,
                "l0": float((f > 0).sum()) / max(1, len(x))}
        if self.lap is not None:  # a parameter penalty: split across ranks, whose gradients are summed
            graph = laplacian_penalty(sae.W_dec, self.lap)
            total = total + cfg.graph_coeff * graph / self.world
            logs["graph"] = graph.item()
        return total, logs, (f > 0).any(0)

    def step(self, i: int, x_full: Tensor) -> dict[str, float]:
        cfg = self.cfg
        x = x_full[self.rank::self.world] * self.scale
        factor = lr_factor(i, cfg)
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * factor * group["mult"]
        sparsity = min(1.0, (i + 1) / max(1, int(cfg.sparsity_warmup_frac * cfg.steps)))
        self.opt.zero_grad(set_to_none=False)
        total, logs, fired = self.loss(x, len(x_full), sparsity)
        total.backward()
        fired = fired.to(torch.int32)
        if self.world > 1:
            for group in self.opt.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
            dist.all_reduce(fired, op=dist.ReduceOp.MAX)
            if cfg.architecture == "batchtopk":
                dist.all_reduce(self._last_min, op=dist.ReduceOp.MIN)
        self.opt.step()
        self.since_fired += len(x_full)
        self.since_fired[fired.bool()] = 0
        with torch.no_grad():
            if cfg.architecture in _RELU_L1:
                self.sae.W_dec.div_(self.sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))
            if cfg.architecture == "batchtopk":
                t = self._last_min.detach()
                self.theta_ema = t if i == 0 else 0.99 * self.theta_ema + 0.01 * t
        if cfg.resample_every and cfg.architecture in ("standard", "gsae", "jumprelu") and (i + 1) % cfg.resample_every == 0:
            self.resample(x_full * self.scale)
        return logs

    @torch.no_grad()
    def resample(self, x: Tensor) -> None:
        dead = (self.since_fired > self.cfg.dead_tokens).nonzero().flatten()
        if len(dead) == 0:
            return
        sae = self.sae
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        f = pre.relu() if self.cfg.architecture in _RELU_L1 else pre * (pre > self.log_theta.exp())
        err = x - (f @ sae.W_dec + sae.b_dec)
        weights = err.pow(2).sum(-1).double()
        pick = torch.multinomial(weights / weights.sum(), len(dead), replacement=True, generator=self.gen)
        dirs = err[pick] / err[pick].norm(dim=-1, keepdim=True).clamp_min(1e-8)
        alive = torch.ones(self.cfg.d_sae, dtype=torch.bool)
        alive[dead] = False
        enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        sae.W_dec[dead] = dirs
        sae.W_enc[:, dead] = dirs.T * 0.2 * enc_norm
        sae.b_enc[dead] = 0.0
        for p, idx in ((sae.W_dec, (dead,)), (sae.W_enc, (slice(None), dead)), (sae.b_enc, (dead,))):
            state = self.opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][idx] = 0.0
        self.since_fired[dead] = 0

    def finish(self) -> SparseAutoencoder:
        sae = self.sae
        if self.cfg.architecture == "jumprelu":
            assert sae.threshold is not None
            sae.threshold.data.copy_(self.log_theta.detach().exp())
        elif self.cfg.architecture == "batchtopk":
            assert sae.threshold is not None
            sae.threshold.data.fill_(float(self.theta_ema))
        sae.fold_scale(self.scale)
        sae.cfg.metadata["normalisation_scale"] = self.scale
        return sae


def train_sae(store: ActivationStore, cfg: TrainConfig, *, progress: bool = True, log_every: int = 50) -> TrainResult:
    """Train an SAE on ``store`` (see the module docstring); returns weights that read raw activations."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    trainer = _Trainer(store, cfg)
    history: list[dict[str, float]] = []
    batches = store.batches(cfg.batch_size, seed=cfg.seed, buffer_rows=cfg.buffer_rows, epochs=None)
    with progress_bar(f"training {cfg.architecture} SAE", cfg.steps, progress and trainer.rank == 0) as advance:
        for i in range(cfg.steps):
            logs = trainer.step(i, next(batches))
            if i % log_every == 0 or i == cfg.steps - 1:
                history.append({"step": float(i), **logs})
            advance(1)
    sae = trainer.finish()
    prov = {"store": store.provenance, "world_size": trainer.world, "safetyscope_version": __version__}
    return TrainResult(sae, cfg, trainer.scale, history, time.perf_counter() - t0, cfg.steps * cfg.batch_size, prov)
