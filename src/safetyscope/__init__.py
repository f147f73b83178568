"""safetyscope: find, measure, steer, edit and transfer safety representations in causal LMs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("safetyscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from safetyscope.model import ArchitectureMap, ChatFormatter, LoadedModel, load_model

__all__ = ["ArchitectureMap", "ChatFormatter", "LoadedModel", "__version__", "load_model"]
