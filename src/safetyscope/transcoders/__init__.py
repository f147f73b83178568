"""Transcoders and attribution graphs: per-layer transcoders, the (local) replacement model, feature-level
attribution graphs with error nodes, pruning by influence, JSON export and a figure."""

from safetyscope.transcoders.evaluate import LayerMetrics, ReplacementMetrics, layer_metrics, replacement_metrics
from safetyscope.transcoders.model import TRANSCODER_KIND, mlp_module, transcoder_config, transcoder_layer
from safetyscope.transcoders.replacement import (
    Trace,
    frozen_replay,
    local_replacement,
    norm_modules,
    qk_projections,
    replace_mlps,
)
from safetyscope.transcoders.stream import MLPRows, stream_mlp_rows
from safetyscope.transcoders.train import TRANSCODER_ARCHITECTURES, TranscoderResult, train_transcoder

__all__ = [
    "TRANSCODER_ARCHITECTURES",
    "TRANSCODER_KIND",
    "LayerMetrics",
    "MLPRows",
    "ReplacementMetrics",
    "Trace",
    "TranscoderResult",
    "frozen_replay",
    "layer_metrics",
    "local_replacement",
    "mlp_module",
    "norm_modules",
    "qk_projections",
    "replace_mlps",
    "replacement_metrics",
    "stream_mlp_rows",
    "train_transcoder",
    "transcoder_config",
    "transcoder_layer",
]
