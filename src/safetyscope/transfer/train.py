"""Train a map on paired activations by minibatch gradient descent on the masked MSE.

Deterministic (a seeded generator draws every minibatch; same seed, same data, same weights)
and resumable: every ``checkpoint_every`` steps the weights, the Adam state, the generator
state, the step and the curve go to ``checkpoint`` (safetensors + JSON); a run given the same
checkpoint continues from there and ends bit-identical to an uninterrupted run. Runs on the
device of ``device`` (GPU when asked). Held-out MSE, cosine and FVU are logged every
``log_every`` steps, plus the target's LM KL when a ``kl_fn`` is given (the post's four curves).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from safetyscope.transfer.losses import fvu, masked_cosine, masked_mse
from safetyscope.transfer.maps import ActivationMap
from safetyscope.transfer.pairs import TransferError


@dataclass
class TrainConfig:
    """Optimisation settings (all part of the checkpoint's identity)."""

    steps: int = 2000
    lr: float = 1e-3
    batch_size: int = 512
    seed: int = 0
    log_every: int = 100
    weight_decay: float = 0.0


@dataclass
class TrainingCurve:
    """One row per logged step: ``step``, ``train_mse``, ``val_mse``, ``val_cosine``, ``val_fvu``
    (and ``val_kl`` when monitored), plus ``seconds`` since the start."""

    rows: list[dict[str, float]] = field(default_factory=list)
    tokens_seen: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def last(self) -> dict[str, float]:
        """The final logged row (empty dict when nothing was logged)."""
        return self.rows[-1] if self.rows else {}


@torch.no_grad()
def evaluate(m: ActivationMap, x: Tensor, y: Tensor, chunk: int = 65536) -> dict[str, float]:
    """Held-out ``mse``, ``cosine`` and ``fvu`` of ``m`` on rows ``x -> y``."""
    dev = next(m.parameters()).device
    pred = torch.cat([m(x[a : a + chunk].to(dev)).float().cpu() for a in range(0, x.shape[0], chunk)])
    return {
        "mse": float(masked_mse(pred, y)),
        "cosine": float(masked_cosine(pred, y)),
        "fvu": float(fvu(pred, y)),
    }


def _save(
    path: Path,
    m: ActivationMap,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    step: int,
    curve: TrainingCurve,
    cfg: TrainConfig,
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
    state = opt.state_dict()
    for pid, st in state["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = (
                (v if isinstance(v, Tensor) else torch.tensor(v)).detach().cpu().contiguous()
            )
    tensors["generator"] = gen.get_state()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    meta = {"step": step, "config": asdict(cfg), "curve": curve.to_dict()}
    path.with_suffix(".json").write_text(json.dumps(meta))


def _load(
    path: Path, m: ActivationMap, opt: torch.optim.Optimizer, gen: torch.Generator, cfg: TrainConfig
) -> tuple[int, TrainingCurve]:
    from safetensors.torch import load_file

    meta = json.loads(path.with_suffix(".json").read_text())
    if meta["config"] != asdict(cfg):
        raise TransferError(
            f"Checkpoint {path} was written with other settings ({meta['config']}); "
            "delete it or train with the same settings to resume."
        )
    t = load_file(str(path))
    m.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    state = opt.state_dict()
    dev = next(m.parameters()).device
    for pid in state["param_groups"][0]["params"]:
        st = {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith(f"opt.{pid}.")}
        if st:
            state["state"][pid] = {k: (v.to(dev) if k != "step" else v) for k, v in st.items()}
    opt.load_state_dict(state)
    gen.set_state(t["generator"])
    curve = TrainingCurve(**meta["curve"])
    return int(meta["step"]), curve


def train_map(
    m: ActivationMap,
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    config: TrainConfig | None = None,
    *,
    kl_fn: Callable[[ActivationMap], float] | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[dict[str, float]], bool] | None = None,
) -> TrainingCurve:
    """Train ``m`` in place on rows ``x -> y`` (Adam on the MSE) and return its curve.

    Args:
        m: the map (its initial weights are the seeded start).
        x, y: training rows; ``x_val``, ``y_val``: held-out rows for the monitored metrics.
        config: :class:`TrainConfig`.
        kl_fn: called with the map at each log step; its value is logged as ``val_kl``.
        checkpoint: a ``.safetensors`` path to save to and resume from.
        checkpoint_every: steps between checkpoints.
        device: where to train (default: CPU).
        progress: called with ``(step, steps)``.
        stop: called with each logged row; returning ``True`` ends training early (the curve ends there).
    """
    cfg = config or TrainConfig()
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise TransferError(f"Training rows do not pair up: {x.shape[0]} source vs {y.shape[0]} target.")
    dev = torch.device(device or "cpu")
    m.to(dev).train()
    xd, yd = x.to(dev), y.to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, curve = 0, TrainingCurve()
    if checkpoint is not None and Path(checkpoint).is_file():
        step, curve = _load(Path(checkpoint), m, opt, gen, cfg)
    t0 = time.perf_counter() - curve.seconds
    n = x.shape[0]
    bs = min(cfg.batch_size, n)
    while step < cfg.steps:
        idx = torch.randint(0, n, (bs,), generator=gen).to(dev)
        loss = masked_mse(m(xd[idx]), yd[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        curve.tokens_seen += bs
        if step % cfg.log_every == 0 or step == cfg.steps:
            m.eval()
            ev = evaluate(m, x_val, y_val)
            row = {
                "step": step,
                "train_mse": float(loss.detach()),
                "val_mse": ev["mse"],
                "val_cosine": ev["cosine"],
                "val_fvu": ev["fvu"],
                "seconds": time.perf_counter() - t0,
            }
            if kl_fn is not None:
                row["val_kl"] = float(kl_fn(m))
            curve.rows.append(row)
            m.train()
            if stop is not None and stop(row):
                break
        if checkpoint is not None and step % checkpoint_every == 0:
            curve.seconds = time.perf_counter() - t0
            _save(Path(checkpoint), m, opt, gen, step, curve, cfg)
        if progress is not None:
            progress(step, cfg.steps)
    curve.seconds = time.perf_counter() - t0
    m.eval()
    return curve
