import pytest

from safetyscope.errors import PromptError
from safetyscope.evaluation._batching import check_texts, pad_id, run_batched, unpack


def test_run_batched_sorts_longest_first_and_restores_order():
    calls = []

    def fn(idx):
        calls.append(list(idx))
        return [i * 10 for i in idx]

    assert run_batched([1, 5, 3, 4, 2], 2, fn, progress=False) == [0, 10, 20, 30, 40]
    assert calls == [[1, 3], [2, 4], [0]]


def test_run_batched_backs_off_on_oom_only():
    sizes = []

    def fn(idx):
        sizes.append(len(idx))
        if len(idx) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return idx

    assert run_batched([3, 2, 1], 4, fn, progress=False) == [0, 1, 2]
    assert sizes == [3, 2, 1, 1, 1]
    with pytest.raises(ValueError, match="batch_size"):
        run_batched([1], 0, fn)
    with pytest.raises(RuntimeError, match="2 results for 1"):
        run_batched([1], 1, lambda idx: [0, 1], progress=False)


def test_check_texts_and_unpack(llama):
    assert check_texts(("a", "b"), "x") == ["a", "b"]
    with pytest.raises(PromptError, match="empty"):
        check_texts([], "texts")
    model, tok, chat = unpack((llama.model, llama.tokenizer))
    assert model is llama.model and chat.format("hi") == llama.chat.format("hi")
    assert pad_id(tok) == tok.pad_token_id
    with pytest.raises(TypeError, match="LoadedModel"):
        unpack("model")  # type: ignore[arg-type]
