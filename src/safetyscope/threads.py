"""How many CPU threads torch uses: a load-aware default, and one thread for small problems.

torch's default is one intra-op thread per core. On a machine whose cores are already busy with
other work, every parallel region then waits for a descheduled thread at its barrier, and small
element-wise ops cost a scheduler time slice each. Measured on a 2-core box at load average 8
(Qwen2.5-1.5B, bf16, a 2 x 40-token forward): 9.2 s on two threads, 2.3 s on one.

* :func:`configure_threads` sets the process-wide count from ``auto``, an integer, or leaves
  torch alone when the user pinned it through ``OMP_NUM_THREADS``. The CLI calls it once
  (``safetyscope --threads``, default ``auto``; ``$SAFETYSCOPE_THREADS`` also works).
* ``auto`` uses the cores that the 1-minute load average leaves free: all of them on an idle
  machine, at least one on a saturated one.
* :func:`threads_for` drops to one thread inside a block for small dense linear algebra (SVDs,
  Cholesky solves, L-BFGS on a few hundred rows), where threads buy nothing (measured: a
  200 x 96 SVD took 1 s on two contended threads and 9 ms on one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from safetyscope.errors import ConfigError

__all__ = ["THREADS_ENV", "auto_threads", "configure_threads", "threads_for"]

#: Environment variable read when ``--threads`` is not given.
THREADS_ENV = "SAFETYSCOPE_THREADS"

#: Problems with fewer tensor entries than this run on one thread.
SINGLE_THREAD_BELOW = 2_000_000


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """Cores left free by the 1-minute load average (at least 1, at most ``cores``)."""
    cores = _cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cores, math.floor(cores - load + 0.5)))


def configure_threads(spec: str | int | None = None) -> int:
    """Set torch's intra-op thread count from ``spec`` (``auto``, a count, or ``$SAFETYSCOPE_THREADS``).

    Without a spec or environment setting, an explicit ``OMP_NUM_THREADS`` is respected (torch
    already read it) and ``auto`` applies otherwise. Returns the count in effect.

    Raises:
        ConfigError: ``spec`` is neither ``auto`` nor a positive integer.
    """
    if spec is None:
        spec = os.environ.get(THREADS_ENV) or (None if os.environ.get("OMP_NUM_THREADS") else "auto")
    if spec is None:
        return torch.get_num_threads()
    text = str(spec).strip().lower()
    if text == "auto":
        n = auto_threads()
    elif text.isdigit() and int(text) >= 1:
        n = int(text)
    else:
        raise ConfigError(f"--threads must be 'auto' or a positive integer, got {spec!r}.")
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


@contextmanager
def threads_for(size: int) -> Iterator[None]:
    """Use one thread inside the block when ``size`` (entries of the largest operand) is small."""
    before = torch.get_num_threads()
    if size < SINGLE_THREAD_BELOW and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
