"""Attribution and circuits: node attribution patching (AtP), a computational graph per family, edge
attribution patching (EAP, EAP-IG), exact edge patching, pruning and circuit faithfulness."""

from safetyscope.circuits.acdc import acdc, acdc_order
from safetyscope.circuits.atp import ATP_POINTS, AtPResult, atp_sites, node_attribution
from safetyscope.circuits.atp_star import atp_star_scores, attention_module, eager_attention
from safetyscope.circuits.attribute import METHODS, attribute, curve_sizes, node_circuit, node_scores
from safetyscope.circuits.eap import IG_VARIANTS, edge_attribution
from safetyscope.circuits.evaluate import (
    area_curves,
    circuit_logits,
    circuit_metrics,
    faithfulness,
    random_circuits,
    random_connected_circuits,
)
from safetyscope.circuits.exact import edge_positions, exact_edge_scores, sample_edges
from safetyscope.circuits.figure import edge_figure
from safetyscope.circuits.grad_hooks import read_with_grad
from safetyscope.circuits.graph import Graph, build_graph
from safetyscope.circuits.graph_io import LayerIO, Projection, graph_io
from safetyscope.circuits.metric import CIRCUIT_METRICS, CircuitMetric, circuit_metric
from safetyscope.circuits.pairs import (
    Pairs,
    encode_pairs,
    length_matched,
    pair_logits,
    same_length,
    token_length,
)
from safetyscope.circuits.path_patching import PathEffect, path_patch, resolve_receivers
from safetyscope.circuits.prune import PRUNINGS, auroc, greedy, prune, receiver_owners, threshold, top_n
from safetyscope.circuits.result import AttributionResult
from safetyscope.circuits.scrub import ScrubResult, resample_pool_partners, scrubbed_loss
from safetyscope.circuits.taps import GradTaps, gradient_taps, receiver_patches

__all__ = [
    "ATP_POINTS",
    "CIRCUIT_METRICS",
    "IG_VARIANTS",
    "METHODS",
    "PRUNINGS",
    "AtPResult",
    "AttributionResult",
    "CircuitMetric",
    "GradTaps",
    "Graph",
    "LayerIO",
    "Pairs",
    "PathEffect",
    "Projection",
    "ScrubResult",
    "acdc",
    "acdc_order",
    "area_curves",
    "atp_sites",
    "atp_star_scores",
    "attention_module",
    "attribute",
    "auroc",
    "build_graph",
    "circuit_logits",
    "circuit_metric",
    "circuit_metrics",
    "curve_sizes",
    "eager_attention",
    "edge_attribution",
    "edge_figure",
    "edge_positions",
    "encode_pairs",
    "exact_edge_scores",
    "faithfulness",
    "gradient_taps",
    "graph_io",
    "greedy",
    "length_matched",
    "node_attribution",
    "node_circuit",
    "node_scores",
    "pair_logits",
    "path_patch",
    "prune",
    "random_circuits",
    "random_connected_circuits",
    "read_with_grad",
    "receiver_owners",
    "receiver_patches",
    "resample_pool_partners",
    "resolve_receivers",
    "same_length",
    "sample_edges",
    "scrubbed_loss",
    "threshold",
    "token_length",
    "top_n",
]
