"""Transcoders and attribution graphs: per-layer transcoders, the (local) replacement model, feature-level
attribution graphs with error nodes, pruning by influence, JSON export and a figure."""

from safetyscope.transcoders.attribution import AttributionGraph, Node, attribution_graph
from safetyscope.transcoders.evaluate import (
    LayerMetrics,
    ReplacementMetrics,
    layer_metrics,
    replacement_metrics,
)
from safetyscope.transcoders.figure import graph_figure, save_graph_figure
from safetyscope.transcoders.fit import TranscoderSet, fit_transcoders, load_transcoders, save_transcoders
from safetyscope.transcoders.model import TRANSCODER_KIND, mlp_module, transcoder_config, transcoder_layer
from safetyscope.transcoders.prune import PrunedGraph, influence, prune_graph
from safetyscope.transcoders.replacement import (
    Trace,
    frozen_replay,
    local_replacement,
    norm_modules,
    qk_projections,
    replace_mlps,
)
from safetyscope.transcoders.stream import MLPRows, stream_mlp_rows
from safetyscope.transcoders.trace import prompt_agreement, prompt_ids, target_id, trace_prompt
from safetyscope.transcoders.train import TRANSCODER_ARCHITECTURES, TranscoderResult, train_transcoder

__all__ = [
    "TRANSCODER_ARCHITECTURES",
    "TRANSCODER_KIND",
    "AttributionGraph",
    "LayerMetrics",
    "MLPRows",
    "Node",
    "PrunedGraph",
    "ReplacementMetrics",
    "Trace",
    "TranscoderResult",
    "TranscoderSet",
    "attribution_graph",
    "fit_transcoders",
    "frozen_replay",
    "graph_figure",
    "influence",
    "layer_metrics",
    "load_transcoders",
    "local_replacement",
    "mlp_module",
    "norm_modules",
    "prompt_agreement",
    "prompt_ids",
    "prune_graph",
    "qk_projections",
    "replace_mlps",
    "replacement_metrics",
    "save_graph_figure",
    "save_transcoders",
    "stream_mlp_rows",
    "target_id",
    "trace_prompt",
    "train_transcoder",
    "transcoder_config",
    "transcoder_layer",
]
