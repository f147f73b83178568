"""Run small dense linear algebra on one thread.

SVDs, Cholesky solves and L-BFGS fits on a few hundred rows are dominated by per-op overhead;
spreading them over threads buys nothing and, on a machine whose cores are busy with other
work, thread synchronisation can make them tens of times slower (measured: a 200 x 96 SVD took
1 s on two contended threads and 9 ms on one). :func:`threads_for` drops to one thread for
such problems and restores the previous setting afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Problems with fewer tensor entries than this run on one thread.
SINGLE_THREAD_BELOW = 2_000_000


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
