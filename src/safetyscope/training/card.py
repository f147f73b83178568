"""The training card (``training_card.json``): data, method, hyper-parameters, held-out rates, time.

Held-out refusal is read from greedy completions of the held-out harmful and harmless prompts,
labelled by the model's judge (the exact organism judge for organisms, the rule judge
otherwise), with 95% Wilson intervals, before and after training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetyscope import __version__
from safetyscope.evaluation.generate import generate
from safetyscope.evaluation.metrics import Rate, refusal_rate
from safetyscope.evaluation.verdict import Judge
from safetyscope.model.loading import LoadedModel

__all__ = ["CARD_FILE", "TrainingCard", "heldout_refusal"]

CARD_FILE = "training_card.json"


def heldout_refusal(
    lm: LoadedModel,
    judge: Judge,
    harmful: Sequence[str],
    harmless: Sequence[str],
    max_new_tokens: int = 24,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[dict[str, Rate], dict[str, list[list[str]]]]:
    """Refusal rates on held-out ``harmful`` / ``harmless`` prompts and every completion."""
    rates, samples = {}, {}
    for name, prompts in (("harmful", harmful), ("harmless", harmless)):
        outs = generate(
            lm, list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress
        )
        rates[name] = refusal_rate(judge.label_many(zip(prompts, outs, strict=True)))
        samples[name] = [[p, o] for p, o in zip(prompts, outs, strict=True)]
    return rates, samples


@dataclass
class TrainingCard:
    """Everything needed to read (and redo) one safety-training run."""

    base_model: str
    method: str
    config: dict[str, Any]
    data: dict[str, Any]
    judge: str
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]
    targets: dict[str, list[Any]]
    meets_targets: bool
    log: dict[str, Any]
    adversary: dict[str, Any] | None = None
    lora: dict[str, Any] | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    total_seconds: float = 0.0
    samples: dict[str, list[list[str]]] = field(default_factory=dict)
    #: Base model's held-out harmless answers scored before/after (``None`` if none was scored).
    harmless_perplexity: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def save(self, folder: Path) -> Path:
        """Write ``folder/training_card.json``."""
        path = Path(folder) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> TrainingCard:
        """Read ``folder/training_card.json``."""
        return cls(**json.loads((Path(folder) / CARD_FILE).read_text()))
