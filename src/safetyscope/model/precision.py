"""Which dtype a model runs in: ``--dtype auto|float32|bfloat16|float16``.

``auto`` picks bfloat16 where it is both fast and safe: on a GPU, and for real models above
1B parameters on a CPU whose flags (``/proc/cpuinfo``) include ``avx512_bf16`` or ``amx_bf16``
(native bf16 matrix units). Everything else runs in float32, so tiny models and organisms keep
bit-exact float32 behaviour. Statistics (means, covariances, SVDs, probes) always accumulate in
float32/float64 whatever the model dtype (see :mod:`safetyscope.activations.stats`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from safetyscope.errors import ModelLoadError

#: The values ``--dtype`` accepts (``auto`` first: the default).
DTYPE_CHOICES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
#: Parameter count above which ``auto`` uses bfloat16 on a bf16-capable CPU.
AUTO_BF16_MIN_PARAMS = 1_000_000_000
_ALIASES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
            "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=4)
def cpu_supports_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU reports native bf16 support (``avx512_bf16`` or ``amx_bf16``)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return any(f in flags for f in _BF16_FLAGS)
    return False


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (the form written to records and provenance)."""
    return str(dtype).removeprefix("torch.")


def resolve_dtype(dtype: str | torch.dtype | None, *, n_params: int | None, device: str,
                  bf16_cpu: bool | None = None) -> torch.dtype:
    """The torch dtype for ``dtype`` (``None`` means ``auto``).

    Args:
        dtype: ``auto``, a name (``float32``, ``bf16``...), or a torch dtype.
        n_params: the model's parameter count (``None``: unknown, treated as small).
        device: where the model will run (``cpu``, ``cuda:0``...).
        bf16_cpu: override the CPU check (tests); default reads ``/proc/cpuinfo``.

    Raises:
        ModelLoadError: an unknown dtype name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16
        fast = cpu_supports_bf16() if bf16_cpu is None else bf16_cpu
        big = n_params is not None and n_params > AUTO_BF16_MIN_PARAMS
        return torch.bfloat16 if (fast and big) else torch.float32
    if dtype in _ALIASES:
        return _ALIASES[dtype]
    raise ModelLoadError(f"Unknown dtype {dtype!r}; use one of {list(DTYPE_CHOICES)}.")


def count_params_local(path: Path) -> int | None:
    """Parameter count of a local HF directory from its safetensors headers (no weights read).

    Returns ``None`` when the directory holds no (readable) safetensors files.
    """
    from safetensors import safe_open

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    try:
        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for key in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                    n = 1
                    for s in st.get_slice(key).get_shape():
                        n *= int(s)
                    total += n
    except Exception:
        return None  # unreadable weights: the guarded load reports them clearly
    return total


def count_params_config(config: Any) -> int:
    """Parameter count of a config, from a model built on the ``meta`` device (no memory used)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def count_params_gguf(path: Path) -> int | None:
    """Parameter count of a GGUF file from its tensor table (memory-mapped, nothing dequantized)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        return sum(int(t.n_elements) for t in reader.tensors)
    except Exception:
        return None
