"""Model loading, declarative architecture maps and chat formatting."""

from safetyscope.model.architectures import (
    ARCHITECTURES,
    ArchitectureMap,
    ResolvedArchitecture,
    resolve_architecture,
)
from safetyscope.model.chat import ChatFormatter, EncodedPrompt
from safetyscope.model.loading import LoadedModel, load_model

__all__ = [
    "ARCHITECTURES",
    "ArchitectureMap",
    "ChatFormatter",
    "EncodedPrompt",
    "LoadedModel",
    "ResolvedArchitecture",
    "load_model",
    "resolve_architecture",
]
