"""The thread policy: load-aware ``auto``, explicit counts, the environment, and small-problem blocks."""

from __future__ import annotations

import pytest
import torch

from safetyscope.errors import ConfigError
from safetyscope.threads import THREADS_ENV, auto_threads, configure_threads, threads_for


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("cores", "load", "want"), [(2, 0.0, 2), (2, 0.6, 1), (2, 0.4, 2), (2, 9.0, 1),
                                                     (16, 3.2, 13), (4, -1.0, 4)])
def test_auto_uses_the_cores_the_load_leaves_free(cores: int, load: float, want: int) -> None:
    assert auto_threads(cores, load) == want


def test_explicit_count_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configure_threads("1") == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "2")
    assert configure_threads() == 2 and torch.get_num_threads() == 2


def test_omp_num_threads_is_respected_without_a_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(2)
    assert configure_threads() == 2  # left alone: the user pinned threads through OpenMP


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1.5"])
def test_bad_spec_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="--threads must be 'auto' or a positive integer"):
        configure_threads(bad)


def test_threads_for_small_problems_and_restores() -> None:
    torch.set_num_threads(2)
    with threads_for(10):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with threads_for(10**8):
        assert torch.get_num_threads() == 2
