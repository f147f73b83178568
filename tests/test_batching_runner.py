import pytest

from safetyscope.batching import check_texts, pad_id, run_batched, unpack
from safetyscope.errors import PromptError


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
    assert sizes == [3, 1, 1, 1]  # the failed batch of 3 halves to 1
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


def test_token_budget_streaming_and_resume():
    from safetyscope.batching import iter_batches, sorted_order

    lengths = [10, 40, 20, 40, 10, 5]
    assert sorted_order(lengths) == [1, 3, 2, 0, 4, 5]
    got = list(iter_batches(lengths, lambda idx: [lengths[i] for i in idx], max_batch_tokens=80))
    # 80 tokens: two 40s, then 20+10+10 (budget 80 // 20 = 4 items, but only 4 remain: 20,10,10,5)
    assert [idx for idx, _ in got] == [[1, 3], [2, 0, 4, 5]]
    assert all(out == [lengths[i] for i in idx] for idx, out in got)
    resumed = list(iter_batches(lengths, lambda idx: idx, batch_size=2, start=3))
    assert [idx for idx, _ in resumed] == [[0, 4], [5]]


def test_oom_halves_the_token_budget_too():
    from safetyscope.batching import iter_batches

    seen = []

    def fn(idx):
        seen.append(len(idx))
        if len(idx) > 2:
            raise MemoryError
        return idx

    out = list(iter_batches([8] * 6, fn, max_batch_tokens=64))
    assert seen == [6, 3, 1, 1, 1, 1, 1, 1]  # 6 fail, 3 fail, then one at a time
    assert sorted(i for idx, _ in out for i in idx) == list(range(6))
