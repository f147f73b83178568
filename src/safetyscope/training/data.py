"""Safety-training data: harmful requests with refusals, harmless requests with helpful answers.

Each harmful example also carries a *compliance target*: the answer the adversary of AT / LAT
pushes the model towards (``toward`` loss). For an organism every part comes from its own corpus
(:func:`organism_data`): refusals from the ``refusal`` behaviour set, compliance from the twin
corpus without it (same instructions, content-free compliance), helpful answers from its
templates. The corpus holds no harmful content, only requests and refusals. Held-out prompts
are the corpus's held-out combinations, never trained on.

For any other model (:func:`model_data`) the harmful and harmless prompts are the *train* split of
user files (or the bundled sets); refusals are short templates and the helpful answers are
supplied by the caller (the model's own greedy completions: self-distillation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from safetyscope.errors import SafetyscopeError

__all__ = [
    "COMPLIANCE",
    "EXTENDED_REFUSALS",
    "REFUSALS",
    "TrainExample",
    "TrainingData",
    "model_data",
    "organism_data",
]

#: Refusal templates for models other than organisms (cycled over the harmful requests).
REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that request.",
    "I can't help with that. It could cause serious harm.",
    "I'm sorry, I won't assist with this request.",
    "I cannot help with that, as it could hurt people.",
)
#: Extended refusals for models other than organisms ("An Embarrassingly Simple Defense",
#: arXiv:2505.19056): a neutral overview, an explicit refusal, then the reason. The paper had an
#: LLM write one per request; these generic templates are the offline stand-in.
EXTENDED_REFUSALS: tuple[str, ...] = (
    "This request asks for help with something that could seriously hurt people or break the law. "
    "I'm sorry, but I can't help with that. Giving this information could put others at risk.",
    "You are asking about an activity that can cause real harm. I can't assist with this request. "
    "Helping could lead to injuries, damage or legal trouble, so I have to decline.",
    "What you describe would put people's safety at risk. I'm sorry, I won't help with that. "
    "Providing instructions like these could be used to harm others.",
    "This is a request for help with a dangerous or illegal act. I cannot help with that. "
    "It could hurt people, and I want to keep everyone safe.",
)
#: Content-free compliance openings: the adversary's target on harmful requests (no harmful content).
COMPLIANCE: tuple[str, ...] = ("Sure, here is how to do it.", "Of course. Here are the steps.")


@dataclass(frozen=True)
class TrainExample:
    """One training pair. ``target`` is the adversary's compliance answer (harmful requests only)."""

    instruction: str
    response: str
    harmful: bool
    target: str | None = None


@dataclass
class TrainingData:
    """Training examples and the held-out prompts the card measures on."""

    examples: list[TrainExample]
    heldout_harmful: list[str]
    heldout_harmless: list[str]
    source: str
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not any(e.harmful for e in self.examples) or all(e.harmful for e in self.examples):
            raise SafetyscopeError("Safety training needs both harmful and harmless training examples.")
        seen = {e.instruction for e in self.examples}
        leak = [p for p in self.heldout_harmful + self.heldout_harmless if p in seen]
        if leak:
            raise SafetyscopeError(
                f"{len(leak)} held-out prompts are also training prompts (e.g. {leak[0]!r})."
            )

    @property
    def hash(self) -> str:
        """SHA-256 (first 16 hex) of the examples, for provenance."""
        blob = json.dumps([asdict(e) for e in self.examples], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        """What the card records about the data."""
        n_h = sum(e.harmful for e in self.examples)
        return {
            "source": self.source,
            "n_harmful": n_h,
            "n_harmless": len(self.examples) - n_h,
            "n_heldout_harmful": len(self.heldout_harmful),
            "n_heldout_harmless": len(self.heldout_harmless),
            "hash": self.hash,
            **self.extra,
        }


def organism_data(
    version: str = "v1", n_train: int = 2000, n_eval: int = 200, seed: int = 0, extended: bool = False
) -> TrainingData:
    """SSFT data from the organism corpus of ``version`` (harmful + harmless kinds only).

    ``extended``: harmful requests are answered with extended refusals
    (:func:`safetyscope.organism.extended_refusal.extended_refusal`) instead of the corpus's.
    """
    from safetyscope.organism.dataset import build_corpus
    from safetyscope.organism.extended_refusal import extended_refusal
    from safetyscope.organism.lexicons import get_lexicon

    topics = {name: c.topic for name, c in get_lexicon(version).categories.items()}

    refuse = build_corpus(seed=seed, n_train=n_train, n_eval=n_eval, version=version, behaviours=("refusal",))
    comply = build_corpus(seed=seed, n_train=n_train, n_eval=n_eval, version=version, behaviours=())
    examples: list[TrainExample] = []
    pairs = zip(refuse.examples("harmful", "train"), comply.examples("harmful", "train"), strict=True)
    for i, (r, c) in enumerate(pairs):
        if r.instruction != c.instruction:
            raise SafetyscopeError(
                "Organism corpus twins disagree on instructions; cannot pair compliance targets."
            )
        answer = extended_refusal(topics[r.category], i) if extended else r.response
        examples.append(TrainExample(r.instruction, answer, True, c.response))
    examples += [TrainExample(e.instruction, e.response, False) for e in refuse.examples("harmless", "train")]
    return TrainingData(
        examples,
        refuse.prompts("harmful"),
        refuse.prompts("harmless"),
        f"organism corpus {version} (seed {seed}, split seed {refuse.split_seed})"
        + (", extended refusals" if extended else ""),
        {"corpus_version": version, "extended_refusals": extended},
    )


def model_data(
    harmful: Sequence[str],
    harmless: Sequence[str],
    helpful: Sequence[str],
    heldout_harmful: Sequence[str],
    heldout_harmless: Sequence[str],
    source: str,
    extended: bool = False,
) -> TrainingData:
    """Data for a real model: refusal templates for ``harmful``, ``helpful[i]`` for ``harmless[i]``.

    ``extended``: the refusals are :data:`EXTENDED_REFUSALS` (explain, refuse, justify).
    """
    if len(helpful) != len(harmless):
        raise SafetyscopeError(f"{len(helpful)} helpful answers for {len(harmless)} harmless prompts.")
    refusals = EXTENDED_REFUSALS if extended else REFUSALS
    examples = [
        TrainExample(p, refusals[i % len(refusals)], True, COMPLIANCE[i % len(COMPLIANCE)])
        for i, p in enumerate(harmful)
    ]
    examples += [TrainExample(p, a, False) for p, a in zip(harmless, helpful, strict=True)]
    return TrainingData(
        examples,
        list(heldout_harmful),
        list(heldout_harmless),
        source + (", extended refusals" if extended else ""),
        {"extended_refusals": extended},
    )
