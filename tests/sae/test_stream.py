"""Activation stream: parity with collect(), shards on disk, resume, shuffled batches."""

from __future__ import annotations

import json

import pytest
import torch

from safetyscope.activations import Site, collect
from safetyscope.errors import CacheError, PromptError, SafetyscopeError
from safetyscope.sae import ActivationStore, load_corpus, stream_activations
from safetyscope.sae.corpus import TokenCorpus, TokenSeq

PROMPTS = ["hello there", "a much longer prompt with many more words in it", "x", "medium length prompt here",
           "another prompt", "one more for the road"]
SITE = Site(1, "resid_post")


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\n".join(PROMPTS))
    return path


def _sorted_rows(store: ActivationStore) -> torch.Tensor:
    rows = torch.cat([store.shard(i) for i in range(len(store.shards))])
    index = torch.cat([store.shard_index(i) for i in range(len(store.shards))])
    order = sorted(range(len(index)), key=lambda r: (int(index[r, 0]), int(index[r, 1])))
    return rows[order]


@pytest.mark.parametrize("positions", ["all", "eoi", "last"])
def test_stream_matches_collect(llama, prompt_file, positions):
    corpus = load_corpus(llama, f"prompts:{prompt_file}", positions, skip_bos=False)
    store = stream_activations(llama, corpus, SITE, progress=False, max_batch_tokens=40)
    ref = collect(llama, PROMPTS, SITE, positions, "none", progress=False)
    assert store.n_rows == len(ref.rows[SITE.key])
    assert torch.allclose(_sorted_rows(store), ref.rows[SITE.key], atol=1e-5)


def test_disk_shards_resume_and_reopen(llama, prompt_file, tmp_path):
    corpus = load_corpus(llama, f"prompts:{prompt_file}", "all")
    full = stream_activations(llama, corpus, SITE, tmp_path / "s", shard_rows=8, max_batch_tokens=30, progress=False)
    assert len(full.shards) > 2
    files = sorted((tmp_path / "s").glob("shard-*.safetensors"))
    assert len(files) == len(full.shards)
    reopened = ActivationStore.open(tmp_path / "s")
    assert torch.equal(reopened.all_rows(), full.all_rows())
    # simulate an interruption after the first shard, then resume
    man = json.loads((tmp_path / "s" / "manifest.json").read_text())
    first = man["shards"][0]
    done = sorted(range(len(corpus.seqs)), key=lambda i: -len(corpus.seqs[i].ids))
    covered = {int(i) for i in full.shard_index(0)[:, 0]}
    assert set(done[:len(covered)]) == covered
    man.update(shards=[first], items_done=len(covered), complete=False)
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(man))
    resumed = stream_activations(llama, corpus, SITE, tmp_path / "s", shard_rows=8, max_batch_tokens=30, progress=False)
    assert torch.allclose(_sorted_rows(resumed), _sorted_rows(full), atol=1e-6)
    other = load_corpus(llama, f"prompts:{prompt_file}", "last")
    with pytest.raises(CacheError, match="another model, site, corpus"):
        stream_activations(llama, other, SITE, tmp_path / "s", progress=False)


def test_batches_shuffle_cover_and_seed():
    rows = torch.arange(100.0).view(50, 2)
    store = ActivationStore(SITE, 2, [rows[:20], rows[20:35], rows[35:]], [20, 15, 15])
    got = torch.cat(list(store.batches(7, seed=3, buffer_rows=14, drop_last=False)))
    assert sorted(got[:, 0].tolist()) == sorted(rows[:, 0].tolist())  # every row once per epoch
    again = torch.cat(list(store.batches(7, seed=3, buffer_rows=14, drop_last=False)))
    other = torch.cat(list(store.batches(7, seed=4, buffer_rows=14, drop_last=False)))
    assert torch.equal(got, again) and not torch.equal(got, other)
    assert not torch.equal(got, rows)  # shuffled
    assert len(list(store.batches(7, seed=0, buffer_rows=14))) == 50 // 7
    with pytest.raises(SafetyscopeError, match="fewer than one batch"):
        next(store.batches(64, buffer_rows=64))


def test_corpus_specs(llama, tmp_path):
    (tmp_path / "t.txt").write_text("the cat sat on the mat\n\nanother line of text\n")
    (tmp_path / "t.jsonl").write_text('{"text": "a b c d"}\n{"text": "e f g"}\n')
    txt = load_corpus(llama, f"text:{tmp_path / 't.txt'}")
    assert len(txt.seqs) == 2 and all(s.positions[0] >= 0 for s in txt.seqs)
    assert len(load_corpus(llama, f"text:{tmp_path / 't.jsonl'}").seqs) == 2
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(PromptError, match="field 'text'"):
        load_corpus(llama, f"text:{tmp_path / 'bad.jsonl'}")
    with pytest.raises(PromptError, match="need chat prompts"):
        load_corpus(llama, f"text:{tmp_path / 't.txt'}", "eoi")
    with pytest.raises(PromptError, match="Unknown corpus"):
        load_corpus(llama, "wikipedia")
    assert len(load_corpus(llama, "bundled", "last").seqs) > 500
    gen = load_corpus(llama, "generate:3", max_len=24)
    assert len(gen.seqs) == 3 and all(len(s.ids) <= 24 for s in gen.seqs)
    org = load_corpus(llama, "organism:40")
    assert len(org.seqs) == 40 and org.hash == load_corpus(llama, "organism:40").hash
    assert TokenCorpus("x", [TokenSeq((1, 2), (1,))]).n_tokens == 1
