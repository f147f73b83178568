"""Disk cache for activation collections: finished results and resumable partial checkpoints.

The key hashes everything that determines the numbers: model fingerprint, prompt-set hash,
sites, position selector, reduction, dtypes and the package version. A finished collection is
stored as ``result.safetensors``; a running one periodically writes ``partial.safetensors`` with
the number of (length-sorted) prompts already processed, so a rerun after an interruption
continues from there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safetyscope.activations.result import ActivationResult
from safetyscope.errors import CacheError
from safetyscope.outputs import atomic_file
from safetyscope.paths import cache_dir


def cache_key(provenance: dict[str, Any], sites: list[str], positions: str, reduce: str, store_dtype: str) -> str:
    """Hash of everything that determines a collection's output."""
    payload = {
        "fingerprint": provenance["model_fingerprint"], "prompt_hash": provenance["prompt_hash"],
        "model_dtype": provenance["model_dtype"], "version": provenance["safetyscope_version"],
        "sites": sites, "positions": positions, "reduce": reduce, "store_dtype": store_dtype,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class Checkpoint:
    """The cache folder of one collection key."""

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.dir = (root or cache_dir("activations")) / key
        self.dir.mkdir(parents=True, exist_ok=True)
        self.result_path = self.dir / "result.safetensors"
        self.partial_path = self.dir / "partial.safetensors"

    def _corrupt(self, path: Path, exc: Exception) -> CacheError:
        return CacheError(
            f"The activation cache entry {path} is unreadable ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no details'}). Delete the folder {self.dir} "
            "(it is recomputed) or run without the cache (--no-cache / cache=False).")

    def load_result(self) -> ActivationResult | None:
        """The finished result, if this key was completed before."""
        if not self.result_path.is_file():
            return None
        try:
            return ActivationResult.load(self.result_path)
        except Exception as exc:  # any unreadable entry: say how to recover
            raise self._corrupt(self.result_path, exc) from exc

    def save_result(self, result: ActivationResult) -> None:
        """Store the finished result and drop the partial checkpoint."""
        result.save(self.result_path)
        self.partial_path.unlink(missing_ok=True)

    def load_partial(self) -> tuple[int, dict[str, torch.Tensor]]:
        """``(prompts_done, sink_state)`` of an interrupted run, or ``(0, {})``."""
        if not self.partial_path.is_file():
            return 0, {}
        try:
            state = load_file(str(self.partial_path))
            done = int(state.pop("__done__").item())
        except Exception as exc:  # a truncated checkpoint: say how to recover
            raise self._corrupt(self.partial_path, exc) from exc
        return done, state

    def save_partial(self, done: int, state: dict[str, torch.Tensor]) -> None:
        """Atomically write a checkpoint after ``done`` length-sorted prompts."""
        tensors = {k: v.contiguous() for k, v in state.items()}
        tensors["__done__"] = torch.tensor([done], dtype=torch.int64)
        with atomic_file(self.partial_path) as tmp:
            save_file(tensors, str(tmp))
