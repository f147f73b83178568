"""Step-wise caching and progress display for the audit.

Each step's JSON result is written to ``out/cache/<step>.json`` (tensors to
``out/cache/<step>.safetensors``) as soon as it finishes, together with its duration. A rerun
with the same manifest (model fingerprint, prompts, configuration) loads finished steps instead of
recomputing them, so an interrupted audit resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from safetensors.torch import load_file, save_file
from torch import Tensor

from safetyscope.batching import progress_bar
from safetyscope.errors import CacheError, OutputExistsError
from safetyscope.outputs import atomic_file

MANIFEST = "manifest.json"

Tick = Callable[[int], None]


def prepare_out(out: Path, manifest: dict[str, Any], force: bool) -> bool:
    """Apply the output-folder rule; return whether an earlier audit's cache is resumed.

    * ``out`` missing or empty: a fresh audit.
    * ``out`` holds an audit cache whose manifest equals ``manifest`` (same model, prompts and
      configuration): resumed, finished steps are reused (interrupted or complete).
    * anything else: refused unless ``force``, which deletes ``out`` first.
    """
    cache = out / "cache"
    if out.exists() and (out.is_file() or any(out.iterdir())):
        same = (cache / MANIFEST).is_file() and _read(cache / MANIFEST) == manifest
        if same and not force:
            return True
        if not force:
            raise OutputExistsError(
                f"{out} exists and is not an interrupted audit of this model and configuration. "
                "Choose another --out or pass --force to replace it.")
        if out.is_file():
            out.unlink()
        else:
            shutil.rmtree(out)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return False


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@dataclass
class StepRunner:
    """Runs named steps once, caching their results and recording timings."""

    cache: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))
    show: bool = True
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def tensors(self, name: str) -> dict[str, Tensor]:
        """Tensors saved by step ``name``."""
        path = self.cache / f"{name}.safetensors"
        try:
            return load_file(str(path))
        except Exception as exc:  # truncated or deleted: say how to recover
            raise CacheError(
                f"The audit cache file {path} is unreadable ({type(exc).__name__}). Delete {self.cache / name}.* "
                "and rerun to recompute that step, or rerun with --force to start the audit over.") from exc

    def run(self, name: str, label: str, fn: Callable[[Tick], tuple[dict[str, Any], dict[str, Tensor] | None]],
            total: int | None = None) -> dict[str, Any]:
        """Return step ``name``'s result from the cache, or compute it with ``fn(tick)`` and cache it.

        ``fn`` returns ``(json_result, tensors_or_None)`` and may call ``tick(n)`` to advance the
        progress bar by ``n`` of ``total`` units.
        """
        path = self.cache / f"{name}.json"
        cached = _read(path) if path.is_file() else None
        if cached is not None and (not cached.get("has_tensors") or (self.cache / f"{name}.safetensors").is_file()):
            self.timings[name] = {"seconds": cached["seconds"], "cached": True}
            if self.show:
                self.console.print(f"[dim]✓ {label}: cached ({cached['seconds']:.1f} s when computed)[/]")
            return cached["result"]
        start = time.perf_counter()
        with self._bar(label, total) as tick:
            result, tensors = fn(tick)
        seconds = time.perf_counter() - start
        if tensors:
            with atomic_file(self.cache / f"{name}.safetensors") as tmp:
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps({"result": result, "seconds": seconds, "has_tensors": bool(tensors)},
                                      allow_nan=False))
        self.timings[name] = {"seconds": seconds, "cached": False}
        if self.show:
            self.console.print(f"[green]✓[/] {label}: {seconds:.1f} s")
        return result

    def _bar(self, label: str, total: int | None) -> AbstractContextManager[Tick]:
        return progress_bar(label, total, self.show)
