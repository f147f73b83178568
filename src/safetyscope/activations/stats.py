"""Streaming first and second moments in float64: memory flat in the number of prompts.

:class:`RunningMoments` accumulates the count, the sum and (optionally) the sum of outer
products of rows ``x ∈ R^d``. Sums (not running means) are kept so that partial results from
several batches, resumed runs or distributed workers combine exactly by addition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass
class RunningMoments:
    """Count, sum and optional sum of outer products of ``d``-dimensional rows (float64)."""

    d: int
    with_cov: bool = False
    count: int = 0
    sum: Float[Tensor, " d"] = field(init=False)
    sum_outer: Float[Tensor, "d d"] | None = field(init=False)

    def __post_init__(self) -> None:
        self.sum = torch.zeros(self.d, dtype=torch.float64)
        self.sum_outer = torch.zeros(self.d, self.d, dtype=torch.float64) if self.with_cov else None

    def update(self, rows: Float[Tensor, "n d"]) -> None:
        """Add rows (any float dtype or device; accumulated in float64 on CPU)."""
        x = rows.detach().to("cpu", torch.float64)
        self.count += x.shape[0]
        self.sum += x.sum(0)
        if self.sum_outer is not None:
            self.sum_outer += x.T @ x

    def merge(self, other: RunningMoments) -> None:
        """Add another accumulator's sums (batches, resumed chunks, workers)."""
        self.count += other.count
        self.sum += other.sum
        if self.sum_outer is not None and other.sum_outer is not None:
            self.sum_outer += other.sum_outer

    @property
    def mean(self) -> Float[Tensor, " d"]:
        """Mean of all rows seen."""
        if self.count == 0:
            raise ValueError("No rows accumulated.")
        return self.sum / self.count

    def cov(self, unbiased: bool = True) -> Float[Tensor, "d d"]:
        """Covariance of all rows seen (``n - 1`` denominator unless ``unbiased=False``)."""
        if self.sum_outer is None:
            raise ValueError("Accumulator was created without with_cov=True.")
        denom = self.count - 1 if unbiased else self.count
        if denom <= 0:
            raise ValueError("Need at least two rows for a covariance.")
        mu = self.mean
        return (self.sum_outer - self.count * torch.outer(mu, mu)) / denom

    def state(self, prefix: str) -> dict[str, Tensor]:
        """Tensors for saving (``safetensors``); inverse of :meth:`from_state`."""
        out = {f"{prefix}.sum": self.sum, f"{prefix}.count": torch.tensor([self.count], dtype=torch.int64)}
        if self.sum_outer is not None:
            out[f"{prefix}.sum_outer"] = self.sum_outer
        return out

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], prefix: str) -> RunningMoments:
        """Rebuild an accumulator saved with :meth:`state`."""
        s = tensors[f"{prefix}.sum"]
        moments = cls(d=s.shape[0], with_cov=f"{prefix}.sum_outer" in tensors)
        moments.sum = s.to(torch.float64).clone()
        moments.count = int(tensors[f"{prefix}.count"].item())
        if moments.sum_outer is not None:
            moments.sum_outer = tensors[f"{prefix}.sum_outer"].to(torch.float64).clone()
        return moments

    def all_reduce(self) -> None:
        """Sum count and sums across ``torch.distributed`` ranks (no-op when not initialised)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        count = torch.tensor([float(self.count)], dtype=torch.float64)
        tensors = [count, self.sum] + ([self.sum_outer] if self.sum_outer is not None else [])
        backend = dist.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        for t in tensors:
            moved = t.to(device)
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            t.copy_(moved.cpu())
        self.count = int(count.item())
