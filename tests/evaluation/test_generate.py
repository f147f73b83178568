import importlib

import pytest
import torch

from safetyscope import load_model
from safetyscope.errors import PromptError
from safetyscope.evaluation.generate import eos_ids, generate, generate_ids

gen_mod = importlib.import_module("safetyscope.evaluation.generate")
PROMPTS = ["hi", "tell me a story about cats", "what?", "abc def ghi jkl mno", "x" * 30, "why is the sky blue"]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "qwen3"])
def test_batched_greedy_equals_one_at_a_time_in_input_order(tiny_dir, family):
    lm = load_model(tiny_dir(family))
    batched = generate(lm, PROMPTS, max_new_tokens=10, batch_size=4, progress=False)
    single = [generate(lm, [p], max_new_tokens=10, batch_size=1, progress=False)[0] for p in PROMPTS]
    assert batched == single
    assert len(set(batched)) > 1  # different prompts really give different outputs


def test_model_tokenizer_pair_and_ids(llama):
    ids = generate_ids((llama.model, llama.tokenizer), PROMPTS[:3], max_new_tokens=5, progress=False)
    assert all(len(row) <= 5 for row in ids)
    text = generate(llama, PROMPTS[:3], max_new_tokens=5, progress=False)
    assert text == [llama.tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids]


class _ForceEos:
    """Forward hook on the unembedding that forces EOS from generation step ``after`` on."""

    def __init__(self, lm, after: int):
        self.lm, self.after, self.calls = lm, after, 0
        self.eos = lm.tokenizer.eos_token_id

    def __call__(self, module, inputs, output):
        self.calls += 1
        if self.calls > self.after:  # call 1 is the prompt pass, then one call per new token
            output = output.clone()
            output[..., self.eos] += 1e4
        return output

    def __enter__(self):
        self.handle = self.lm.arch.unembed.register_forward_hook(self)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_stops_at_eos_and_hooks_are_active(llama):
    with _ForceEos(llama, after=0):
        assert generate(llama, PROMPTS[:3], max_new_tokens=8, progress=False) == ["", "", ""]
    with _ForceEos(llama, after=3):
        ids = generate_ids(llama, PROMPTS[:3], max_new_tokens=8, batch_size=3, progress=False)
    assert [len(r) for r in ids] == [3, 3, 3]
    assert llama.tokenizer.eos_token_id in eos_ids(llama.model, llama.tokenizer)


def test_out_of_memory_halves_the_batch(llama, monkeypatch):
    expected = generate(llama, PROMPTS, max_new_tokens=6, batch_size=1, progress=False)
    real = llama.model.generate
    sizes = []

    def fake(*args, **kwargs):
        n = kwargs["input_ids"].shape[0]
        sizes.append(n)
        if n > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(llama.model, "generate", fake)
    assert generate(llama, PROMPTS, max_new_tokens=6, batch_size=8, progress=False) == expected
    assert sizes[:2] == [6, 3] and max(sizes[2:]) <= 2  # the failed batch halves each time


def test_other_errors_and_oom_at_batch_one_propagate(llama, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(llama.model, "generate", boom)
    with pytest.raises(RuntimeError, match="allocate"):
        generate(llama, PROMPTS[:2], batch_size=2, progress=False)
    monkeypatch.setattr(llama.model, "generate", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad")))
    with pytest.raises(ValueError, match="bad"):
        generate(llama, PROMPTS[:2], progress=False)


def test_sampling_is_seeded_and_leaves_global_rng_alone(llama):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = generate(llama, PROMPTS, max_new_tokens=8, do_sample=True, seed=7, temperature=1.5, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    b = generate(llama, PROMPTS, max_new_tokens=8, do_sample=True, seed=7, temperature=1.5, progress=False)
    c = generate(llama, PROMPTS, max_new_tokens=8, do_sample=True, seed=8, temperature=1.5, progress=False)
    greedy = generate(llama, PROMPTS, max_new_tokens=8, progress=False)
    assert a == b and a != c and a != greedy


def test_progress_bar_for_many_batches(llama, monkeypatch):
    shown = []
    real = gen_mod.run_batched

    def spy(*args, **kwargs):
        shown.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(gen_mod, "run_batched", spy)
    out = generate(llama, PROMPTS * 2, max_new_tokens=2, batch_size=2, progress=True)
    assert len(out) == 12 and shown == [True]


def test_bad_inputs(llama):
    with pytest.raises(PromptError, match="empty"):
        generate(llama, [], progress=False)
    with pytest.raises(PromptError, match="single string"):
        generate(llama, "hello", progress=False)  # type: ignore[arg-type]
    with pytest.raises(PromptError, match=r"instructions\[1\]"):
        generate(llama, ["ok", "  "], progress=False)
    with pytest.raises(ValueError, match="temperature"):
        generate(llama, ["ok"], do_sample=True, temperature=0.0, progress=False)


def test_works_inside_intervention_contexts(llama):
    from safetyscope.interventions.hooks import ablate, add

    clean = generate(llama, PROMPTS, max_new_tokens=8, progress=False)
    vector = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(0))
    with add(llama, vector, scale=8.0, layers=1):
        steered = generate(llama, PROMPTS, max_new_tokens=8, batch_size=3, progress=False)
        steered_single = [generate(llama, [p], max_new_tokens=8, progress=False)[0] for p in PROMPTS]
    assert steered == steered_single and steered != clean
    with ablate(llama, vector):
        assert generate(llama, PROMPTS, max_new_tokens=8, progress=False) != clean
    assert generate(llama, PROMPTS, max_new_tokens=8, progress=False) == clean  # hooks removed
