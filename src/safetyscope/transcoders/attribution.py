"""Attribution graphs of one prompt through the local replacement model (Anthropic 2025, "Circuit tracing").

Nodes: every active transcoder feature at every position, one error node per (layer, position),
one token-embedding node per position, and output-logit nodes (default: the top next token at the
last position; the logit is taken minus the mean logit). In the local replacement model
(:func:`~safetyscope.transcoders.local_replacement`) every target (a feature's encoder
pre-activation, or a logit) is a *linear* function of the sources (feature activations, error
vectors, embeddings) plus constants, so the edge from source ``s`` to target ``t`` is

    A[t, s] = a_s * d(t)/d(a_s)          feature source (activation a_s)
    A[t, s] = e_s . d(t)/d(e_s)          error or embedding source (vector e_s)

the source's direct contribution to the target through the frozen attention and norms (edges
*through* other features are cut: their activations are leaves). Every target's gradient comes
from one backward pass of a batch in which row ``i`` carries target ``i``: ``targets_per_pass``
targets per forward/backward, never a loop over edges. A feature at layer L reads only sources
from earlier layers (or the same position's embedding), so the graph is a DAG.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope import __version__
from safetyscope.errors import SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.sae.model import SparseAutoencoder
from safetyscope.transcoders.replacement import local_replacement


@dataclass
class Node:
    """One node: ``kind`` is ``feature``, ``error``, ``embedding`` or ``logit``."""

    kind: str
    layer: int  # -1 for embeddings, n_layers for logits
    position: int
    feature: int = -1  # feature index, or the token id of a logit
    activation: float = 0.0  # feature activation, error / embedding norm, or logit value
    label: str = ""

    @property
    def id(self) -> str:
        """Stable name, e.g. ``f1.3.27`` (layer 1, position 3, feature 27), ``e1.3``, ``emb3``, ``logit.1234``."""
        if self.kind == "feature":
            return f"f{self.layer}.{self.position}.{self.feature}"
        if self.kind == "error":
            return f"e{self.layer}.{self.position}"
        if self.kind == "embedding":
            return f"emb{self.position}"
        return f"logit.{self.feature}"


@dataclass
class AttributionGraph:
    """Nodes and the dense edge matrix ``adjacency[target, source]`` over the same node order."""

    nodes: list[Node]
    adjacency: Tensor  # [n_nodes, n_nodes] float64; rows: targets (features, logits); cols: sources
    tokens: list[str]
    logit_probs: list[float]  # probability of each logit node's token
    meta: dict[str, Any] = field(default_factory=dict)

    def indices(self, kind: str) -> list[int]:
        """Indices of nodes of ``kind``."""
        return [i for i, n in enumerate(self.nodes) if n.kind == kind]


def _logit_target(lm: LoadedModel, logits: Tensor, token: Tensor) -> Tensor:
    """``logit[token] - mean(logits)`` per row (``logits`` ``[b, vocab]``, ``token`` ``[b]``)."""
    return logits.gather(1, token[:, None])[:, 0] - logits.mean(-1)


def attribution_graph(
    lm: LoadedModel,
    transcoders: Mapping[int, SparseAutoencoder],
    ids: Sequence[int],
    *,
    targets: Sequence[int] | None = None,
    targets_per_pass: int = 32,
    feature_labels: Mapping[tuple[int, int], str] | None = None,
) -> AttributionGraph:
    """The attribution graph of token ids ``ids`` (see the module docstring).

    Args:
        targets: token ids whose last-position logits are the output nodes (default: the top-1 token).
        targets_per_pass: target nodes per batched forward + backward.
        feature_labels: optional ``(layer, feature) -> label`` for the nodes.
    """
    if not transcoders:
        raise SafetyscopeError("An attribution graph needs at least one transcoder.")
    if len(ids) < 1:
        raise SafetyscopeError("An attribution graph needs a non-empty prompt.")
    t0 = time.perf_counter()
    dev = lm.device
    x = torch.tensor([list(ids)], device=dev)
    with local_replacement(lm, transcoders) as tr:
        logits = lm.model(input_ids=x, use_cache=False).logits[0, -1].float().detach()
    probs = logits.detach().softmax(-1)
    tgt_tokens = list(targets) if targets is not None else [int(probs.argmax())]
    if any(not 0 <= t < logits.shape[-1] for t in tgt_tokens):
        raise SafetyscopeError(
            f"Target token ids {tgt_tokens} outside the vocabulary (0..{logits.shape[-1] - 1})."
        )
    n_pos, layers = len(ids), sorted(transcoders)
    labels = feature_labels or {}
    nodes: list[Node] = []
    feat_cols: dict[int, tuple[Tensor, Tensor]] = {}  # layer -> (positions, features) of active features
    for layer in layers:
        a = tr.acts[layer][0].detach()
        pos, feat = (a > 0).nonzero(as_tuple=True)
        feat_cols[layer] = (pos, feat)
        nodes += [
            Node("feature", layer, int(p), int(f), float(a[p, f]), labels.get((layer, int(f)), ""))
            for p, f in zip(pos.tolist(), feat.tolist(), strict=True)
        ]
    n_feat = len(nodes)
    err_layers = sorted(tr.errors)
    for layer in err_layers:
        e = tr.errors[layer][0].detach()
        nodes += [Node("error", layer, p, -1, float(e[p].norm())) for p in range(n_pos)]
    assert tr.embed is not None
    emb = tr.embed[0].detach()
    tok_text = [lm.tokenizer.decode([int(t)]) for t in ids]
    nodes += [Node("embedding", -1, p, int(ids[p]), float(emb[p].norm()), tok_text[p]) for p in range(n_pos)]
    n_src = len(nodes)
    nodes += [
        Node("logit", lm.n_layers, n_pos - 1, t, float(logits[t]), lm.tokenizer.decode([t]))
        for t in tgt_tokens
    ]
    adj = torch.zeros(len(nodes), len(nodes), dtype=torch.float64)
    target_rows = list(range(n_feat)) + list(range(n_src, len(nodes)))
    passes = 0
    for start in range(0, len(target_rows), targets_per_pass):
        chunk = target_rows[start : start + targets_per_pass]
        b = len(chunk)
        with local_replacement(lm, transcoders) as tb:
            out = lm.model(input_ids=x.expand(b, -1), use_cache=False).logits[:, -1].float()
            vals = []
            for row, ti in enumerate(chunk):
                node = nodes[ti]
                if node.kind == "logit":
                    vals.append(
                        _logit_target(lm, out[row : row + 1], torch.tensor([node.feature], device=dev))[0]
                    )
                else:
                    vals.append(tb.pre[node.layer][row, node.position, node.feature])
            assert tb.embed is not None
            leaves = [tb.acts[la] for la in layers] + [tb.errors[la] for la in err_layers] + [tb.embed]
            grads = torch.autograd.grad(torch.stack(vals).sum(), leaves, allow_unused=True)
        passes += 1
        g = dict(zip(range(len(leaves)), grads, strict=True))
        cols: list[Tensor] = []
        for i, layer in enumerate(layers):  # feature sources: a_s * dt/da_s
            pos, feat = feat_cols[layer]
            gi = g[i] if g[i] is not None else torch.zeros_like(tb.acts[layer])
            cols.append((gi[:, pos, feat] * tr.acts[layer][0].detach()[pos, feat]).double().cpu())
        for j, layer in enumerate(err_layers):  # error sources: e . dt/de
            gi = g[len(layers) + j]
            e = tr.errors[layer][0].detach()
            cols.append(
                torch.zeros(b, n_pos, dtype=torch.float64) if gi is None else (gi * e).sum(-1).double().cpu()
            )
        ge = g[len(leaves) - 1]
        cols.append(
            torch.zeros(b, n_pos, dtype=torch.float64) if ge is None else (ge * emb).sum(-1).double().cpu()
        )
        adj[torch.tensor(chunk), :n_src] = torch.cat(cols, dim=1)
    meta = {
        "model": lm.spec,
        "model_fingerprint": lm.fingerprint(),
        "n_tokens": n_pos,
        "layers": layers,
        "n_layers": lm.n_layers,
        "n_features": n_feat,
        "passes": passes,
        "targets_per_pass": targets_per_pass,
        "seconds": time.perf_counter() - t0,
        "safetyscope_version": __version__,
        "logit_target": "logit[token] - mean(logits)",
    }
    return AttributionGraph(nodes, adj, tok_text, [float(probs[t]) for t in tgt_tokens], meta)
