"""Build and train the organism: a small ``LlamaForCausalLM`` trained from scratch on CPU.

Training is deterministic for a given seed: weights are initialised after
``torch.manual_seed(seed)``, the data order comes from a seeded ``torch.Generator``, and the
thread count is fixed (one intra-op thread by default) for the duration of training. One
thread also keeps the same weights on machines with different core counts, and on a busy
2-core machine it is several times faster than two threads contending with other processes;
these models are too small to gain much from parallel kernels anyway. The loss covers response tokens and the
closing ``</s>`` only (plain-text documents of corpus ``v2``: every token after ``<s>``).
Checkpoint callbacks run at chosen steps, outside the timed training. Batches are right-padded to their longest sequence; no attention mask is
needed because causal attention never lets a real token see the padding after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from safetyscope.errors import SafetyscopeError
from safetyscope.organism.dataset import Example
from safetyscope.organism.models import generation_config, make_model
from safetyscope.organism.tokenizer import encode_prompt, encode_response

__all__ = [
    "IGNORE_INDEX",
    "SIZES",
    "EncodedExample",
    "TrainConfig",
    "TrainResult",
    "collate",
    "encode_examples",
    "encode_texts",
    "generation_config",
    "lr_at",
    "make_model",
    "size_config",
    "train_model",
]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainConfig:
    """Model dimensions and optimisation settings of one organism size."""

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    steps: int
    lr: float
    batch_size: int
    n_train: int
    n_eval: int = 200
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    threads: int = 1
    corpus: str = "v1"

    def to_dict(self) -> dict[str, object]:
        """Return the settings as a JSON-serialisable dict."""
        return asdict(self)


#: The organism sizes. Every size shares the tokenizer and the corpus generator.
SIZES: dict[str, TrainConfig] = {
    "tiny": TrainConfig(
        d_model=96, n_layers=3, n_heads=4, d_ff=256, steps=700, lr=3e-3, batch_size=48, n_train=8000
    ),
    "small": TrainConfig(
        d_model=160, n_layers=4, n_heads=4, d_ff=448, steps=800, lr=2e-3, batch_size=64, n_train=12000
    ),
    "deep": TrainConfig(
        d_model=128, n_layers=8, n_heads=4, d_ff=256, steps=700, lr=2e-3, batch_size=32, n_train=16000,
        corpus="v2",
    ),
}


def size_config(size: str, **overrides: object) -> TrainConfig:
    """Look up :data:`SIZES` (raising a helpful error) and apply keyword overrides."""
    if size not in SIZES:
        raise SafetyscopeError(f"Unknown organism size {size!r}; choose one of {sorted(SIZES)}.")
    cfg = SIZES[size]
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


@dataclass
class EncodedExample:
    """Token ids of prompt + response and the index where the response starts."""

    ids: list[int]
    prompt_len: int


def encode_examples(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]) -> list[EncodedExample]:
    """Tokenize examples as chat prompt (with generation prompt) followed by response and ``</s>``."""
    out = []
    for e in examples:
        prompt = encode_prompt(tokenizer, e.instruction)  # type: ignore[arg-type]
        out.append(EncodedExample(prompt + encode_response(tokenizer, e.response), len(prompt)))  # type: ignore[arg-type]
    return out


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[EncodedExample]:
    """Tokenize plain-text documents as ``<s> text </s>``; the loss covers every token after ``<s>``."""
    out = []
    for t in texts:
        ids = [int(tokenizer.bos_token_id), *tokenizer(t, add_special_tokens=False)["input_ids"]]
        out.append(EncodedExample([*ids, int(tokenizer.eos_token_id)], 1))
    return out


def collate(batch: Sequence[EncodedExample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch; return ``input_ids`` and ``labels`` (prompt and padding ignored)."""
    width = max(len(b.ids) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for i, b in enumerate(batch):
        row = torch.tensor(b.ids, dtype=torch.long)
        ids[i, : len(b.ids)] = row
        labels[i, b.prompt_len : len(b.ids)] = row[b.prompt_len :]
    return ids, labels


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_frac * lr``."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class TrainResult:
    """What training reports: per-step losses and wall-clock seconds."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    callback_seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 20 steps (NaN when nothing was trained)."""
        tail = self.losses[-20:]
        return sum(tail) / len(tail) if tail else float("nan")


def train_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    cfg: TrainConfig,
    seed: int,
    progress: bool = True,
    texts: Sequence[str] = (),
    callback_steps: Collection[int] = (),
    callback: Callable[[int, PreTrainedModel], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``examples`` (and ``texts``) for ``cfg.steps`` steps.

    Deterministic per seed. ``callback(step, model)`` runs after each step in
    ``callback_steps`` (counted from 1) with the model in eval mode; its time is reported as
    ``callback_seconds`` and not included in ``seconds``.
    """
    if not examples:
        raise SafetyscopeError("No training examples.")
    encoded = encode_examples(tokenizer, examples) + encode_texts(tokenizer, texts)
    pad_id = int(tokenizer.pad_token_id)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embed" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    result = TrainResult()
    order: list[int] = []
    start = time.perf_counter()
    model.train()
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("train", total=cfg.steps, loss=float("nan"))
            for step in range(cfg.steps):
                if len(order) < cfg.batch_size:
                    order += torch.randperm(len(encoded), generator=gen).tolist()
                idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
                ids, labels = collate([encoded[i] for i in idx], pad_id)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, cfg)
                loss = model(input_ids=ids, labels=labels).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                result.losses.append(float(loss.item()))
                bar.update(task, advance=1, loss=result.final_loss)
                if callback is not None and step + 1 in callback_steps:
                    t0 = time.perf_counter()
                    model.eval()
                    callback(step + 1, model)
                    model.train()
                    result.callback_seconds += time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    model.eval()
    result.seconds = time.perf_counter() - start - result.callback_seconds
    return result
