"""What an activation-patching sweep patches: components, layers, position slots and heads.

A sweep is a list of :class:`PatchTarget` cells. ``resid_pre`` / ``resid_post`` / ``attn_out`` /
``mlp_out`` patch the whole ``d_model`` vector at a stream point; ``heads`` patches one attention
head's slice of the input of the attention-output projection (site point ``attn_z``,
``[n_heads * d_head]``, head-major), which is what the head writes before ``o_proj`` mixes heads.
Positions are *slots*: slot ``j`` is the ``j``-th token a :class:`~safetyscope.activations.Positions`
selector picks in each prompt, so every prompt must select the same number of tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from safetyscope.activations.sites import Site
from safetyscope.errors import SafetyscopeError

#: Components a sweep can patch (``heads`` = every head of ``attn_z`` separately).
COMPONENTS: tuple[str, ...] = ("resid_pre", "resid_post", "attn_out", "mlp_out", "heads")
#: ``denoise``: clean activations into the corrupted run (sufficiency); ``noise``: corrupted
#: activations into the clean run (necessity).
MODES: tuple[str, ...] = ("denoise", "noise")


class PatchingError(SafetyscopeError):
    """Unusable patching input: unequal-length pairs, unknown component, head or layer out of range."""


@dataclass(frozen=True)
class PatchTarget:
    """One cell of a sweep.

    Attributes:
        component: one of :data:`COMPONENTS`.
        layer: block index.
        slot: position slot (``None``: every selected position of the prompt at once).
        head: head index for ``heads``, else ``None``.
    """

    component: str
    layer: int
    slot: int | None
    head: int | None = None

    @property
    def site(self) -> Site:
        """The site written (``heads`` write the ``attn_z`` point)."""
        return Site(self.layer, "attn_z" if self.component == "heads" else self.component)  # type: ignore[arg-type]


def head_layout(model: object, attn_out_in_features: int) -> tuple[int, int]:
    """``(n_heads, d_head)`` from the config's head count and the attention-output projection's input width."""
    config = getattr(model, "config", None)
    n_heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    if not n_heads or attn_out_in_features % int(n_heads):
        raise PatchingError(
            f"Cannot split the attention-output input ({attn_out_in_features} features) into heads: "
            f"the config gives num_attention_heads={n_heads!r}."
        )
    return int(n_heads), attn_out_in_features // int(n_heads)


def in_features(module: object, layout: str) -> int:
    """Input width of a writer projection (``nn.Linear``: ``[out, in]``; GPT-2 ``Conv1D``: ``[in, out]``)."""
    weight = module.weight  # type: ignore[attr-defined]
    return int(weight.shape[1] if layout == "out_in" else weight.shape[0])


def parse_components(spec: str | Sequence[str]) -> list[str]:
    """``"resid_pre,heads"`` or a list into validated component names (order kept, duplicates dropped)."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [c for c in items if c not in COMPONENTS]
    if bad or not items:
        raise PatchingError(f"Unknown component(s) {bad or items}; use a comma-separated subset of {list(COMPONENTS)}.")
    return list(dict.fromkeys(items))


def parse_heads(spec: str | Sequence[int] | None, n_heads: int) -> list[int]:
    """``None``/``"all"`` (every head), ``"0,3"``, ``"2-5"`` or a list, checked against ``n_heads``."""
    if spec is None or spec == "all":
        return list(range(n_heads))
    if isinstance(spec, str):
        out: list[int] = []
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            try:
                out.extend(range(int(lo), int(hi or lo) + 1))
            except ValueError as exc:
                raise PatchingError(f"Cannot parse heads {spec!r}; use all, 0,3 or 2-5.") from exc
    else:
        out = [int(h) for h in spec]
    bad = [h for h in out if not 0 <= h < n_heads]
    if bad:
        raise PatchingError(f"Head index {bad} out of range: the model has {n_heads} heads per layer (0-{n_heads - 1}).")
    return sorted(set(out))


def sweep_targets(components: Sequence[str], layers: Sequence[int], n_layers: int, n_slots: int,
                  heads: Sequence[int] = (), joint: bool = False) -> list[PatchTarget]:
    """Every (component, layer, slot[, head]) cell, layer-major; ``joint`` patches all slots at once."""
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise PatchingError(f"Layer {bad} is beyond the model: it has {n_layers} layers (0-{n_layers - 1}).")
    if not layers:
        raise PatchingError("No layers to patch.")
    slots: list[int | None] = [None] if joint else list(range(n_slots))
    out = []
    for comp in parse_components(components):
        for layer in layers:
            for slot in slots:
                if comp == "heads":
                    out.extend(PatchTarget(comp, layer, slot, h) for h in heads)
                else:
                    out.append(PatchTarget(comp, layer, slot))
    return out
