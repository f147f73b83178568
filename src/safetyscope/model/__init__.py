"""Model loading, declarative architecture maps, chat formatting, precision, memory and pulls.

``pull`` and ``verify`` live in :mod:`safetyscope.model.pull` (not re-exported: the names would shadow it).
"""

from safetyscope.model.architectures import (
    ARCHITECTURES,
    ArchitectureMap,
    ResolvedArchitecture,
    resolve_architecture,
)
from safetyscope.model.chat import ChatFormatter, EncodedPrompt
from safetyscope.model.loading import LoadedModel, load_model
from safetyscope.model.memory import bytes_per_token, token_budget
from safetyscope.model.precision import DTYPE_CHOICES, cpu_supports_bf16, resolve_dtype
from safetyscope.model.pull import ChecksumError, PullResult, VerifyResult
from safetyscope.model.registry import KNOWN_MODELS, PypiModel, pulled_path
from safetyscope.model.twin import random_twin

__all__ = [
    "ARCHITECTURES",
    "DTYPE_CHOICES",
    "KNOWN_MODELS",
    "ArchitectureMap",
    "ChatFormatter",
    "ChecksumError",
    "EncodedPrompt",
    "LoadedModel",
    "PullResult",
    "PypiModel",
    "ResolvedArchitecture",
    "VerifyResult",
    "bytes_per_token",
    "cpu_supports_bf16",
    "load_model",
    "pulled_path",
    "random_twin",
    "resolve_architecture",
    "resolve_dtype",
    "token_budget",
]
