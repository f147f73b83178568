"""Several interventions in one batch: row-routed edits, batched arm generation and shared-pass KL."""

from __future__ import annotations

import contextlib

import pytest
import torch

from safetyscope import load_model
from safetyscope.activations import RowBlock, Site, edit, only_rows
from safetyscope.errors import SafetyscopeError
from safetyscope.evaluation.generate import generate_ids, generate_ids_under
from safetyscope.evaluation.metrics import arms_kl, continuation_kl, first_token_kl
from safetyscope.interventions.hooks import ablate, add

PROMPTS = ["hi", "tell me a story about cats", "what?", "abc def ghi jkl mno", "why is the sky blue"]


def _vector(lm, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(lm.d_model, generator=g) * 4


def _contexts(lm):
    v, w = _vector(lm, 1), _vector(lm, 2)
    mid = Site(lm.n_layers // 2)
    return [contextlib.nullcontext, lambda: ablate(lm, v), lambda: add(lm, w, 1.0, mid, positions="prompt"),
            lambda: add(lm, v, 2.0, mid)]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_arms_generated_together_equal_each_arm_alone(tiny_dir, family: str) -> None:
    lm = load_model(tiny_dir(family))
    contexts = _contexts(lm)
    together = generate_ids_under(lm, PROMPTS, contexts, max_new_tokens=8, batch_size=2, progress=False)
    alone = []
    for make in contexts:
        with make():
            alone.append(generate_ids(lm, PROMPTS, max_new_tokens=8, batch_size=2, progress=False))
    assert together == alone
    assert len({tuple(map(tuple, arm)) for arm in alone}) == len(contexts)  # the edits really differ


def test_arms_kl_equals_separate_first_token_and_continuation_kl(tiny_dir) -> None:
    lm = load_model(tiny_dir("llama"))
    other = load_model(tiny_dir("llama", 1))
    conts = generate_ids(lm, PROMPTS, max_new_tokens=6, progress=False)
    conts[0] = []  # an empty continuation falls back to the first-token position
    contexts = _contexts(lm)[1:]
    arms = [(None, c) for c in contexts] + [(other, None), (other, contexts[0])]
    shared = arms_kl(lm, PROMPTS, conts, arms, batch_size=2)
    for (model, ctx), got in zip(arms, shared, strict=True):
        first = first_token_kl(lm, PROMPTS, other=model, intervention=ctx, batch_size=3)
        cont = continuation_kl(lm, PROMPTS, conts, other=model, intervention=ctx, batch_size=3)
        assert got.first_token.per_prompt == pytest.approx(first.per_prompt, rel=1e-4, abs=1e-6)
        assert got.continuation.per_prompt == pytest.approx(cont.per_prompt, rel=1e-4, abs=1e-6)
        assert got.first_token.mean > 1e-9  # the arms really differ from the reference


def test_only_rows_edits_its_block_and_nothing_else(llama) -> None:
    site = Site(1)
    seen: list[torch.Tensor] = []

    def bump(_site: Site, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0

    def spy(_site: Site, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return x

    ids = torch.randint(5, 50, (2, 4)).repeat(3, 1)  # three identical blocks of two rows
    with only_rows(RowBlock(1, 3)), edit(llama.arch, site, bump):
        pass  # created and left inside: nothing stays registered
    with contextlib.ExitStack() as stack:
        with only_rows(RowBlock(1, 3)):
            stack.enter_context(edit(llama.arch, site, bump))
        stack.enter_context(edit(llama.arch, Site(2), spy))  # created outside: sees every row
        llama.model(ids)
    h = seen[0]
    assert torch.equal(h[0:2], h[4:6]) and not torch.allclose(h[0:2], h[2:4])


def test_row_block_errors() -> None:
    with pytest.raises(SafetyscopeError, match=r"outside 0\.\.1"):
        RowBlock(2, 2)
    with pytest.raises(SafetyscopeError, match="does not split into 3 blocks"):
        RowBlock(0, 3).rows(4)


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_last_token_logits_under_equals_each_context_alone(tiny_dir, family: str) -> None:
    from safetyscope.evaluation.refusal_score import last_token_logits, last_token_logits_under

    lm = load_model(tiny_dir(family))
    contexts = _contexts(lm)
    together = last_token_logits_under(lm, PROMPTS, contexts, batch_size=6)
    assert together.shape == (len(contexts), len(PROMPTS), lm.vocab_size)
    for i, make in enumerate(contexts):
        with make():
            torch.testing.assert_close(together[i], last_token_logits(lm, PROMPTS, batch_size=2), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(together[0], together[1])


@contextlib.contextmanager
def _raw_hook(lm):
    """An intervention that bypasses ``edit``: a plain forward hook that scales a block's output."""

    def hook(_m, _args, out):
        return (out[0] * 3.0, *out[1:]) if isinstance(out, tuple) else out * 3.0

    handle = lm.model.model.layers[1].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _weight_change(lm):
    w = lm.model.model.layers[0].mlp.down_proj.weight
    saved = w.detach().clone()
    with torch.no_grad():
        w.mul_(0.0)
    try:
        yield
    finally:
        with torch.no_grad():
            w.copy_(saved)


def test_interventions_outside_edit_are_refused_in_shared_batches(tiny_dir) -> None:
    from safetyscope.activations import routes_by_rows

    lm = load_model(tiny_dir("llama"))
    v = _vector(lm, 1)
    assert routes_by_rows(lm.model, lambda: ablate(lm, v))
    for bad in (_raw_hook, _weight_change):
        assert not routes_by_rows(lm.model, lambda bad=bad: bad(lm))
        with pytest.raises(SafetyscopeError, match="cannot share a batch"):
            generate_ids_under(lm, PROMPTS, [contextlib.nullcontext, lambda bad=bad: bad(lm)], max_new_tokens=4,
                               progress=False)
        with pytest.raises(SafetyscopeError, match="cannot share a batch"):
            arms_kl(lm, PROMPTS, [[1]] * len(PROMPTS), [(None, lambda bad=bad: bad(lm))])
    assert sum(len(m._forward_hooks) for m in lm.model.modules()) == 0  # refused contexts were exited


def test_run_arms_runs_raw_hook_arms_alone(tiny_dir) -> None:
    from safetyscope.causal import Arm, run_arms
    from safetyscope.causal.arms import decode
    from safetyscope.evaluation.rule_judge import RuleJudge

    lm = load_model(tiny_dir("llama"))
    v = _vector(lm, 1)
    arms = [Arm("baseline", lm), Arm("ablate", lm, lambda: ablate(lm, v)), Arm("raw", lm, lambda: _raw_hook(lm))]
    sets = {"harmless": PROMPTS}
    report = run_arms(lm, arms, sets, RuleJudge(), intervention="mixed", max_new_tokens=6, batch_size=2)
    with _raw_hook(lm):
        alone = generate_ids(lm, PROMPTS, max_new_tokens=6, batch_size=2, progress=False)
    assert [c for _, c, _ in report.arms["raw"].samples["harmless"]] == decode(lm, alone)[:3]
    raw_kl = first_token_kl(lm, PROMPTS, intervention=lambda: _raw_hook(lm), batch_size=2)
    assert report.arms["raw"].kl_first_token == pytest.approx(raw_kl.mean, rel=1e-4)
    assert report.arms["raw"].kl_first_token > 1e-6
