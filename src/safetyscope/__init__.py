"""safetyscope: find, measure, steer, edit and transfer safety representations in causal LMs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("safetyscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from safetyscope.model import ArchitectureMap, ChatFormatter, LoadedModel, load_model

__all__ = ["ArchitectureMap", "ChatFormatter", "LoadedModel", "__version__", "load_audit", "load_model"]


def __getattr__(name: str) -> object:
    """``safetyscope.load_audit`` is imported on first use (it pulls in the audit pipeline)."""
    if name == "load_audit":
        from safetyscope.pipelines.audit_load import load_audit

        return load_audit
    raise AttributeError(f"module 'safetyscope' has no attribute {name!r}")
