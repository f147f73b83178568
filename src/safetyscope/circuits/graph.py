"""The computational graph of a decoder-only transformer, built from its architecture map.

*Senders* write the residual stream: the input embedding (``input``), every attention head
(``a3.h2``) and every MLP (``m3``). *Receivers* read it: the query, key and value input of every
head (``a3.h2<q>``; under grouped-query attention keys and values belong to key-value heads,
``a3.kv1<k>``), every MLP input (``m3``) and the logits (``logits``). An edge joins a sender to
every receiver that reads the stream after the sender wrote it: a head of layer L feeds every
q/k/v of layers > L, the MLP of layer L (unless the family runs attention and MLP in parallel,
GPT-NeoX) and the logits.

Post-norm families (Gemma-2/3, OLMo-2) normalise the *sum* of the heads before the residual add,
so a single head has no residual write of its own: there the attention layer is one sender
(``a3``), while its heads stay separate receivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safetyscope.causal.patch_spec import head_layout, in_features
from safetyscope.model.loading import LoadedModel


@dataclass
class Graph:
    """Senders, receivers and the mask of real edges ``[n_senders, n_receivers]``.

    Attributes:
        senders: sender names in forward order (``input``, then per layer heads or ``aL``, ``mL``).
        sender_layer: block of each sender (-1 for ``input``).
        sender_kind: ``input``, ``head``, ``attn`` (post-norm layer sender) or ``mlp``.
        sender_head: head index of a head sender, else -1.
        receivers: receiver names (per layer q, k, v inputs then the MLP; last ``logits``).
        receiver_layer: block of each receiver (``n_layers`` for the logits).
        receiver_kind: ``q``, ``k``, ``v``, ``mlp`` or ``logits``.
        receiver_head: (query or key-value) head index, else -1.
        mask: ``mask[s, r]`` is True where ``s -> r`` is an edge.
        scores: one score per (sender, receiver), 0 where there is no edge (filled by a method).
        info: family, n_layers, n_heads, n_kv_heads, d_head, post_norm, parallel.
    """

    senders: list[str]
    sender_layer: list[int]
    sender_kind: list[str]
    sender_head: list[int]
    receivers: list[str]
    receiver_layer: list[int]
    receiver_kind: list[str]
    receiver_head: list[int]
    mask: Tensor
    info: dict[str, Any]
    scores: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_edges(self) -> int:
        """Number of real edges."""
        return int(self.mask.sum())

    def edge_index(self) -> Tensor:
        """``[n_edges, 2]`` (sender, receiver) index pairs of every real edge, in a fixed order."""
        return self.mask.nonzero()

    def edge_names(self, idx: Tensor | None = None) -> list[str]:
        """``"src->dst"`` names of the edges ``idx`` (default: every edge, in :meth:`edge_index` order)."""
        idx = self.edge_index() if idx is None else idx
        return [f"{self.senders[s]}->{self.receivers[r]}" for s, r in idx.tolist()]

    def edge_scores(self) -> Tensor:
        """Scores of every real edge, in :meth:`edge_index` order."""
        if self.scores is None:
            raise ValueError("The graph has no scores yet; run atp/eap/eap_ig/exact first.")
        return self.scores[self.mask]

    def receiver_node(self, r: int) -> str:
        """The node a receiver belongs to (``a3.h2<q>`` -> ``a3.h2``)."""
        return self.receivers[r].split("<")[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: nodes, edges (``src``, ``dst``, ``score``) and graph facts."""
        edges = []
        scores = self.edge_scores().tolist() if self.scores is not None else None
        for k, (s, r) in enumerate(self.edge_index().tolist()):
            edges.append(
                {
                    "src": self.senders[s],
                    "dst": self.receivers[r],
                    "score": None if scores is None else scores[k],
                }
            )
        nodes = list(
            dict.fromkeys([*self.senders, *(self.receiver_node(r) for r in range(len(self.receivers)))])
        )
        return {"info": self.info, "nodes": nodes, "edges": edges, "meta": self.meta}


def _attn_heads(lm: LoadedModel) -> tuple[int, int, int]:
    """``(n_heads, n_kv_heads, d_head)`` of the model."""
    n_heads, d_head = head_layout(
        lm.model, in_features(lm.arch.attn_out(0), lm.arch.map.writer_weight_layout)
    )
    n_kv = getattr(lm.model.config, "num_key_value_heads", None) or n_heads
    if lm.family in ("gpt2", "gpt_neox"):
        n_kv = n_heads
    return n_heads, int(n_kv), d_head


def build_graph(lm: LoadedModel) -> Graph:
    """The computational graph of ``lm`` (see the module docstring)."""
    n_layers = lm.n_layers
    n_heads, n_kv, d_head = _attn_heads(lm)
    post_norm = lm.arch.map.attn_out_norm is not None
    parallel = bool(getattr(lm.model.config, "use_parallel_residual", False)) and lm.family == "gpt_neox"
    s_name, s_layer, s_kind, s_head = ["input"], [-1], ["input"], [-1]
    r_name, r_layer, r_kind, r_head = [], [], [], []
    kv_tag = "h" if n_kv == n_heads else "kv"
    for layer in range(n_layers):
        if post_norm:
            s_name.append(f"a{layer}")
            s_layer.append(layer)
            s_kind.append("attn")
            s_head.append(-1)
        else:
            for h in range(n_heads):
                s_name.append(f"a{layer}.h{h}")
                s_layer.append(layer)
                s_kind.append("head")
                s_head.append(h)
        s_name.append(f"m{layer}")
        s_layer.append(layer)
        s_kind.append("mlp")
        s_head.append(-1)
        for kind, count, tag in (("q", n_heads, "h"), ("k", n_kv, kv_tag), ("v", n_kv, kv_tag)):
            for h in range(count):
                r_name.append(f"a{layer}.{tag}{h}<{kind}>")
                r_layer.append(layer)
                r_kind.append(kind)
                r_head.append(h)
        r_name.append(f"m{layer}")
        r_layer.append(layer)
        r_kind.append("mlp")
        r_head.append(-1)
    r_name.append("logits")
    r_layer.append(n_layers)
    r_kind.append("logits")
    r_head.append(-1)
    sl = torch.tensor(s_layer)[:, None]
    rl = torch.tensor(r_layer)[None, :]
    is_attn_sender = torch.tensor([k in ("head", "attn") for k in s_kind])[:, None]
    is_mlp_receiver = torch.tensor([k == "mlp" for k in r_kind])[None, :]
    mask = (sl < rl) | ((sl == rl) & is_attn_sender & is_mlp_receiver & (not parallel))
    info = {
        "family": lm.family,
        "n_layers": n_layers,
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "d_head": d_head,
        "post_norm": post_norm,
        "parallel": parallel,
        "n_senders": len(s_name),
        "n_receivers": len(r_name),
        "n_edges": int(mask.sum()),
    }
    return Graph(s_name, s_layer, s_kind, s_head, r_name, r_layer, r_kind, r_head, mask, info)
