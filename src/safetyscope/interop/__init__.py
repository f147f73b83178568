"""Interoperability: peers' direction formats in and out, edits as LoRA adapters and as GGUF."""

from safetyscope.interop.formats import (
    FORMATS,
    Conversion,
    convert,
    detect_format,
    read_directions,
    roundtrip_error,
    write_directions,
)
from safetyscope.interop.gguf_model import GgufExport, GgufExportError, load_gguf_model, write_gguf
from safetyscope.interop.peer import FormatError
from safetyscope.interop.steering_vectors_io import from_steering_vector, to_steering_vector

__all__ = [
    "FORMATS",
    "Conversion",
    "FormatError",
    "GgufExport",
    "GgufExportError",
    "convert",
    "detect_format",
    "from_steering_vector",
    "load_gguf_model",
    "read_directions",
    "roundtrip_error",
    "to_steering_vector",
    "write_directions",
    "write_gguf",
]
