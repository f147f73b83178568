"""Patchscopes: decode a hidden state by patching it into an inspection prompt and letting a model read it.

Ghandeharioun et al. (2024, "Patchscopes: A Unifying Framework for Inspecting Hidden
Representations of Language Models"). Take the hidden state ``h = h_l(source, i)`` of a source
prompt at layer ``l`` and position ``i``; run a *target* inspection prompt, replace its hidden
state at layer ``l*`` and the placeholder position ``p`` by ``f(h)``, and decode what the target
model then says:

    P(y | inspection, h_{l*}(p) ← f(h))

With the identity prompt ``"cat -> cat; 1135 -> 1135; x ->"`` (placeholder ``x``) the model
continues the pattern by copying whatever the placeholder now holds, so the first generated
token names the token (or concept) the patched state encodes. By default the target is the
source model, ``l* = l`` and ``f`` is the identity; a transfer map
(:mod:`safetyscope.transfer`, ``f = map``) carries the state into *another* model's residual
stream at the map's target site. Every write goes through :func:`safetyscope.activations.edit`
at a :class:`~safetyscope.activations.Site`, and rows run through the package's one batched
runner; greedy continuation re-runs the prefix (no KV cache), so the write stays at ``p``.

Controls reported beside each layer: the inspection prompt unpatched, and a random vector of
the same norm patched at the same site (what a state that encodes nothing produces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.hooks import edit
from safetyscope.activations.sites import Site
from safetyscope.analysis.readout import read_last
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.causal.controls import random_like
from safetyscope.errors import PromptError, SafetyscopeError
from safetyscope.model.loading import LoadedModel

#: The identity inspection prompt of the Patchscopes paper, with ``x`` as the placeholder.
DEFAULT_INSPECTION = "cat -> cat; 1135 -> 1135; x ->"
DEFAULT_PLACEHOLDER = "x"
StateMap = Callable[[Tensor], Tensor]


@dataclass
class PatchRow:
    """One patched run: token ids, the position to overwrite, the site and the ``[d]`` value (``None``: unpatched)."""

    ids: list[int]
    position: int
    site: Site
    vector: Tensor | None


@dataclass
class Decoded:
    """What a patched run produced: the first token's top-k, the scored ids' probability, the greedy continuation."""

    top_ids: list[int]
    top_probs: list[float]
    score: float | None
    generated: list[int]


def encode(lm: LoadedModel, text: str, *, chat: bool = False) -> tuple[list[int], list[tuple[int, int]], str]:
    """Token ids, character offsets and rendered text: chat-formatted, or raw (with the tokenizer's own specials)."""
    if chat:
        enc = lm.chat.encode(text)
        return enc.input_ids, enc.offsets, enc.text
    out = lm.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    return list(out["input_ids"]), [tuple(o) for o in out["offset_mapping"]], text


def find_position(offsets: Sequence[tuple[int, int]], text: str, needle: str) -> int:
    """The last token overlapping the last occurrence of ``needle`` in ``text``.

    Raises:
        PromptError: ``needle`` does not occur.
    """
    start = text.rfind(needle)
    if start < 0 or not needle:
        raise PromptError(f"{needle!r} does not occur in {text[-120:]!r}.")
    end = start + len(needle)
    hits = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
    if not hits:
        raise PromptError(f"No token covers {needle!r} in {text[-120:]!r}.")
    return hits[-1]


def hidden_states(
    lm: LoadedModel, ids: Sequence[Sequence[int]], positions: Sequence[int], sites: Sequence[Site]
) -> dict[Site, Float[Tensor, "n d"]]:
    """The activation at ``sites`` of each sequence's token ``positions[i]`` (causal: the prefix suffices)."""
    cut = []
    for seq, pos in zip(ids, positions, strict=True):
        p = pos if pos >= 0 else len(seq) + pos
        if not 0 <= p < len(seq):
            raise SafetyscopeError(f"Position {pos} outside a sequence of {len(seq)} tokens.")
        cut.append(list(seq[: p + 1]))
    got = read_last(lm, cut, list(sites))
    return {s: got[s.key] for s in sites}


@torch.no_grad()
def patch_decode(
    lm: LoadedModel,
    rows: Sequence[PatchRow],
    *,
    max_new_tokens: int = 1,
    k: int = 5,
    score_ids: Sequence[int] | None = None,
    progress: bool = False,
) -> list[Decoded]:
    """Run every row with its vector written at ``(site, position)``; decode the next token(s) greedily.

    Rows are batched by length (left padding; the write follows each row's padding), and every
    site of a batch is edited in one pass. ``score_ids``: report the summed first-token
    probability of these ids.
    """
    if not rows:
        raise SafetyscopeError("patch_decode: no rows.")
    for r in rows:
        if not 0 <= r.position < len(r.ids):
            raise SafetyscopeError(f"Patch position {r.position} outside a prompt of {len(r.ids)} tokens.")
        if r.vector is not None and r.vector.shape[-1] != lm.d_model:
            raise SafetyscopeError(f"A patched state has width {r.vector.shape[-1]}, the model {lm.d_model}.")
    pad = pad_id(lm.tokenizer)
    steps = max(1, max_new_tokens)
    score = list(score_ids) if score_ids else None

    def run(idx: list[int]) -> list[Decoded]:
        gen: list[list[int]] = [[] for _ in idx]
        first: list[tuple[list[int], list[float], float | None]] = []
        for step in range(steps):
            cur = [rows[i].ids + g for i, g in zip(idx, gen, strict=True)]
            inputs = pad_left(cur, pad, lm.device)
            width = inputs["input_ids"].shape[1]
            writes: dict[Site, list[tuple[int, int, Tensor]]] = {}
            for b, (i, seq) in enumerate(zip(idx, cur, strict=True)):
                row = rows[i]
                if row.vector is not None:
                    writes.setdefault(row.site, []).append((b, width - len(seq) + row.position, row.vector))

            def write(
                site: Site, x: Tensor, writes: dict[Site, list[tuple[int, int, Tensor]]] = writes
            ) -> Tensor:
                x = x.clone()
                for b, col, vec in writes[site]:
                    x[b, col] = vec.to(x.device, x.dtype)
                return x

            if writes:
                with edit(lm.arch, list(writes), write):
                    logits = lm.model(**inputs, use_cache=False).logits[:, -1].float()
            else:
                logits = lm.model(**inputs, use_cache=False).logits[:, -1].float()
            probs = torch.softmax(logits.double(), -1).cpu()
            if step == 0:
                top = probs.topk(min(k, probs.shape[-1]), -1)
                first = [
                    (
                        top.indices[b].tolist(),
                        top.values[b].tolist(),
                        float(probs[b, score].sum()) if score else None,
                    )
                    for b in range(len(idx))
                ]
            for b, t in enumerate(probs.argmax(-1).tolist()):
                gen[b].append(int(t))
        return [
            Decoded(f[0], f[1], f[2], g if max_new_tokens > 0 else [])
            for f, g in zip(first, gen, strict=True)
        ]

    out: list[Decoded | None] = [None] * len(rows)
    for idx, res in iter_batches(
        [len(r.ids) + steps for r in rows],
        run,
        max_batch_tokens=8192,
        progress=progress,
        description="patchscope",
    ):
        for i, d in zip(idx, res, strict=True):
            out[i] = d
    return out  # type: ignore[return-value]


@dataclass
class PatchscopeLayer:
    """The reading at one source layer: patched, random-vector control, and whether it reproduces the source token."""

    layer: int
    target_layer: int
    top_tokens: list[str]
    top_probs: list[float]
    continuation: str
    p_source_token: float
    p_source_token_random: float
    random_top_token: str
    reproduces_source: bool


@dataclass
class PatchscopeReport:
    """A patchscope of one source state across layers, with the unpatched inspection prompt as baseline."""

    source_text: str
    source_token: str
    source_position: int
    inspection: str
    placeholder: str
    point: str
    layers: list[PatchscopeLayer]
    unpatched_top_tokens: list[str]
    unpatched_continuation: str
    p_source_token_unpatched: float
    target_model: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatchscopeReport:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["layers"] = [PatchscopeLayer(**x) for x in d["layers"]]
        return cls(**d)

    def figure(self) -> dict[str, Any]:
        """A ``curves`` spec: P(source token) by layer, patched vs random-vector control vs unpatched."""
        x = [r.layer for r in self.layers]
        return {
            "kind": "curves",
            "x": x,
            "xlabel": "source layer",
            "ylabel": "P(source token) at first output",
            "ylim": [0, 1],
            "title": f"Patchscope of {self.source_token!r} ({self.inspection!r})",
            "series": [
                {"label": "patched state", "y": [r.p_source_token for r in self.layers], "role": "effect"},
                {
                    "label": "random vector, equal norm",
                    "y": [r.p_source_token_random for r in self.layers],
                    "role": "control",
                },
                {"label": "unpatched", "y": [self.p_source_token_unpatched] * len(x), "role": "baseline"},
            ],
            "caption": "; ".join(f"L{r.layer}: {r.top_tokens[0]!r}" for r in self.layers),
        }


def patchscope(
    lm: LoadedModel,
    source: str,
    *,
    position: int | str = -1,
    layers: Sequence[int] | None = None,
    point: str = "resid_post",
    inspection: str = DEFAULT_INSPECTION,
    placeholder: str = DEFAULT_PLACEHOLDER,
    chat: bool = False,
    target: LoadedModel | None = None,
    target_layers: Sequence[int] | None = None,
    mapping: StateMap | None = None,
    max_new_tokens: int = 4,
    k: int = 5,
    seed: int = 0,
) -> PatchscopeReport:
    """Decode the source token's hidden state at each layer through an inspection prompt.

    Args:
        lm: the source model.
        source: the source text (raw, or chat-formatted with ``chat=True``).
        position: the source token: an index (``-1`` = last) or a substring (its last token).
        layers: source layers (default all); each is read at ``Site(layer, point)``.
        inspection: the inspection prompt (raw text); placeholder: the text whose last token is overwritten.
        chat: chat-format the *source* (the inspection prompt stays raw).
        target: the model that reads the state (default ``lm``); with another model pass ``mapping``
            (e.g. a :mod:`safetyscope.transfer` map) and ``target_layers`` (one per source layer).
        mapping: ``f(h) -> h'`` applied to each source state before the write.
        max_new_tokens: greedy continuation length; k: top tokens reported; seed: the random control.
    """
    tgt = target or lm
    if tgt is not lm and (mapping is None or target_layers is None):
        raise SafetyscopeError(
            "A patchscope into another model needs a mapping (a transfer map) and target layers."
        )
    ids, offsets, text = encode(lm, source, chat=chat)
    pos = (
        find_position(offsets, text, position)
        if isinstance(position, str)
        else (position if position >= 0 else len(ids) + position)
    )
    layer_list = list(range(lm.n_layers)) if layers is None else list(layers)
    tl = layer_list if target_layers is None else list(target_layers)
    if len(tl) != len(layer_list):
        raise SafetyscopeError(f"{len(layer_list)} source layers but {len(tl)} target layers.")
    sites = [Site(layer, point) for layer in layer_list]  # type: ignore[arg-type]
    states = hidden_states(lm, [ids], [pos], sites)
    t_ids, t_off, t_text = encode(tgt, inspection)
    p = find_position(t_off, t_text, placeholder)
    src_tok = int(ids[pos])
    same_vocab = tgt is lm or tgt.tokenizer.get_vocab() == lm.tokenizer.get_vocab()
    score = [src_tok] if same_vocab else []  # P(source token) only means something in a shared vocabulary
    rows: list[PatchRow] = [PatchRow(t_ids, p, Site(tl[0], point), None)]  # type: ignore[arg-type]
    for i, site in enumerate(sites):
        h = states[site][0]
        v = (mapping(h.to(torch.float32)).detach() if mapping is not None else h).flatten()
        tsite = Site(tl[i], point)  # type: ignore[arg-type]
        rows.append(PatchRow(t_ids, p, tsite, v))
        rows.append(PatchRow(t_ids, p, tsite, random_like(v, seed + i)))
    dec = patch_decode(tgt, rows, max_new_tokens=max_new_tokens, k=k, score_ids=score or None)
    name = tgt.tokenizer.convert_ids_to_tokens
    out = []
    for i, layer in enumerate(layer_list):
        d, r = dec[1 + 2 * i], dec[2 + 2 * i]
        out.append(
            PatchscopeLayer(
                layer,
                tl[i],
                name(d.top_ids),
                d.top_probs,
                tgt.tokenizer.decode(d.generated),
                d.score or 0.0,
                r.score or 0.0,
                name(r.top_ids[0]),
                d.top_ids[0] == src_tok,
            )
        )
    base = dec[0]
    prov = {
        "model_fingerprint": lm.fingerprint(),
        "target_fingerprint": tgt.fingerprint(),
        "seed": seed,
        "mapped": mapping is not None,
        "chat": chat,
        "safetyscope_version": __version__,
    }
    return PatchscopeReport(
        source,
        lm.tokenizer.convert_ids_to_tokens(src_tok),
        pos,
        inspection,
        placeholder,
        point,
        out,
        name(base.top_ids),
        tgt.tokenizer.decode(base.generated),
        base.score or 0.0,
        None if tgt is lm else tgt.spec,
        prov,
    )
