"""The SSFT / AT / LAT / circuit-breaker / extended-refusal training loop: deterministic for a seed, checkpointed, resumable.

Every step draws ``batch_size`` examples (a seeded permutation per epoch, so the order depends
only on the seed and the epoch). SSFT minimises the answer cross-entropy of the batch. AT and
LAT first run the :mod:`~safetyscope.training.adversaries` attack on the harmful rows (toward
their compliance targets), then minimise the refusal cross-entropy *under* that perturbation plus
the clean loss on the harmless rows; one loss over all answer tokens of the batch. Extended
refusal is SSFT on other data (the refusals explain first). Circuit breakers replace the
cross-entropy by representation rerouting against a frozen copy plus a retain loss
(:mod:`~safetyscope.training.circuit_breakers`). Every random
draw of step ``s`` comes from generators seeded by ``(seed, s)``, so a run resumed from a
checkpoint continues exactly as the uninterrupted run (tested bit for bit on CPU).

Checkpoints (``state.pt``: trainable weights, optimiser state, losses; loaded with
``weights_only=True``) go to ``checkpoint_dir`` every ``checkpoint_every`` steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from safetyscope.batching import pad_id, progress_bar
from safetyscope.errors import OptionError
from safetyscope.model.loading import LoadedModel
from safetyscope.training.adversaries import Adversary, attack, perturbed
from safetyscope.training.circuit_breakers import (
    CB_LOSSES,
    FrozenReference,
    circuit_breaker_layers,
    circuit_breaker_loss,
    coefficients,
)
from safetyscope.training.tokens import Encoded, collate

__all__ = ["METHODS", "STATE_FILE", "TrainingConfig", "TrainingLog", "train"]

METHODS: tuple[str, ...] = ("ssft", "at", "lat", "circuit-breakers", "extended-refusal")
STATE_FILE = "state.pt"


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one run (``layer=None``: about a quarter of the depth for LAT).

    ``cb_layers`` (``None``: about 1/3 and 2/3 of the depth), ``cb_loss``, ``cb_alpha`` and
    ``cb_retain`` set the circuit breakers' rerouted layers, rerouting loss, loss scale α and
    retain multiplier λ.
    """

    method: str = "ssft"
    steps: int = 150
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    epsilon: float = 0.5
    adv_steps: int = 6
    layer: int | None = None
    weight_decay: float = 0.0
    warmup_frac: float = 0.1
    grad_clip: float = 1.0
    max_response_tokens: int = 64
    checkpoint_every: int = 50
    cb_layers: tuple[int, ...] | None = None
    cb_loss: str = "relu-cosine"
    cb_alpha: float = 1.0
    cb_retain: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OptionError(f"--method {self.method!r} is not one of {', '.join(METHODS)}.")
        if self.cb_loss not in CB_LOSSES:
            raise OptionError(f"--cb-loss {self.cb_loss!r} is not one of {', '.join(CB_LOSSES)}.")
        if not self.cb_alpha > 0:
            raise OptionError(f"--cb-alpha must be > 0 (got {self.cb_alpha}).")
        if not self.cb_retain >= 0:
            raise OptionError(f"--cb-retain must be >= 0 (got {self.cb_retain}).")
        if self.steps < 1 or self.batch_size < 2 or not self.lr > 0:
            raise OptionError("Training needs steps >= 1, batch size >= 2 and lr > 0.")

    def adversary(self, n_layers: int) -> Adversary | None:
        """The attack of AT / LAT (``None`` for SSFT)."""
        if self.method in ("ssft", "extended-refusal", "circuit-breakers"):
            return None
        if self.method == "at":
            return Adversary("embedding", self.epsilon, self.adv_steps, 0)
        layer = self.layer if self.layer is not None else max(1, round(n_layers / 4))
        return Adversary("latent", self.epsilon, self.adv_steps, layer)

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


@dataclass
class TrainingLog:
    """Per-step losses (training, the adversary's toward loss, circuit-breaker parts) and timing."""

    losses: list[float] = field(default_factory=list)
    adv_losses: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from: int = 0

    def tail(self, values: Sequence[float], n: int = 10) -> float | None:
        """Mean of the last ``n`` values (``None`` when empty)."""
        v = [x for x in values[-n:] if not math.isnan(x)]
        return sum(v) / len(v) if v else None

    def to_dict(self) -> dict[str, object]:
        """JSON form with the final loss summaries."""
        return (
            asdict(self)
            | {
                "final_loss": self.tail(self.losses),
                "final_adv_loss": self.tail(self.adv_losses),
            }
            | {f"final_{k}_loss": self.tail(v) for k, v in self.parts.items()}
        )


def _lr(step: int, cfg: TrainingConfig) -> float:
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _indices(step: int, cfg: TrainingConfig, n: int) -> list[int]:
    """The examples of ``step``: a function of (seed, step) only, so resuming needs no RNG state."""
    out = []
    for k in range(step * cfg.batch_size, (step + 1) * cfg.batch_size):
        epoch, pos = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        out.append(int(perm[pos]))
    return out


def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _save_state(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, log: TrainingLog
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "weights": {k: v.detach().cpu() for k, v in _trainable(model).items()},
        "optimizer": opt.state_dict(),
        "losses": list(log.losses),
        "adv_losses": list(log.adv_losses),
        "parts": {k: list(v) for k, v in log.parts.items()},
    }
    tmp = path / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path / STATE_FILE)


def train(
    lm: LoadedModel,
    items: Sequence[Encoded],
    cfg: TrainingConfig,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainingLog:
    """Train ``lm.model`` in place on encoded ``items``; return the log.

    Full fine-tuning when no parameter is marked trainable (loaded models are frozen), else only
    the trainable ones (LoRA adapters).
    """
    model = lm.model
    adv = cfg.adversary(lm.n_layers)
    if adv is not None:
        adv.check(lm)
    reference, cb_layers = None, []
    if cfg.method == "circuit-breakers":
        cb_layers = circuit_breaker_layers(lm.n_layers, cfg.cb_layers)
        reference = FrozenReference(lm)  # before any weight changes
    if not any(p.requires_grad for p in model.parameters()):
        model.requires_grad_(True)  # full fine-tuning (LoRA marks only its adapters trainable)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    log, start = TrainingLog(), 0
    state_path = checkpoint_dir / STATE_FILE if checkpoint_dir is not None else None
    if resume and state_path is not None and state_path.is_file():
        state = torch.load(state_path, weights_only=True, map_location="cpu")
        names = _trainable(model)
        with torch.no_grad():
            for k, v in state["weights"].items():
                names[k].copy_(v)
        opt.load_state_dict(state["optimizer"])
        start, log.losses, log.adv_losses = (
            int(state["step"]),
            list(state["losses"]),
            list(state["adv_losses"]),
        )
        log.parts = {k: list(v) for k, v in state.get("parts", {}).items()}
        log.resumed_from = start
    pid = pad_id(lm.tokenizer)
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    model.train()
    try:
        with progress_bar(f"training ({cfg.method})", cfg.steps, show=progress) as advance:
            advance(start)
            for step in range(start, cfg.steps):
                torch.manual_seed(cfg.seed * 7919 + step)  # dropout, if any
                batch_items = [items[i] for i in _indices(step, cfg, len(items))]
                batch = collate(batch_items, pid)
                for group in opt.param_groups:
                    group["lr"] = _lr(step, cfg)
                ids, labels = batch.input_ids.to(device), batch.labels.to(device)
                harm = [i for i, it in enumerate(batch_items) if it.harmful and it.target is not None]
                if reference is not None:
                    loss, parts = circuit_breaker_loss(
                        lm,
                        reference,
                        batch_items,
                        cb_layers,
                        kind=cfg.cb_loss,
                        coef=coefficients(step, cfg.steps, cfg.cb_alpha, cfg.cb_retain),
                        pad_id=pid,
                    )
                    for k, v in parts.items():
                        log.parts.setdefault(k, []).append(v)
                elif adv is not None and harm:
                    gen = torch.Generator().manual_seed(cfg.seed * 104_729 + step)
                    sub = collate([batch_items[i] for i in harm], pid, use_target=True)
                    delta_h, adv_loss = attack(lm, adv, sub, gen)
                    delta = torch.zeros(
                        (len(batch_items), *delta_h.shape[1:]), dtype=delta_h.dtype, device=device
                    )
                    delta[harm] = delta_h
                    mask = batch.request.to(device)
                    with perturbed(lm, adv.site, delta, mask):
                        loss = model(input_ids=ids, labels=labels).loss
                    log.adv_losses.append(adv_loss)
                else:
                    loss = model(input_ids=ids, labels=labels).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                log.losses.append(float(loss.detach()))
                advance(1)
                done = step + 1
                if (
                    checkpoint_dir is not None
                    and cfg.checkpoint_every > 0
                    and (done % cfg.checkpoint_every == 0 or done == cfg.steps)
                ):
                    _save_state(checkpoint_dir, model, opt, done, log)
    finally:
        model.eval()
    log.seconds = time.perf_counter() - t0
    return log
