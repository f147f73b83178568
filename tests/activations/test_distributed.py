import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from safetyscope import load_model
from safetyscope.activations import Site, collect
from safetyscope.activations.distributed import shard, world
from safetyscope.data.prompts import PromptSet

PROMPTS = [f"prompt {i} " + "more " * (i % 5) for i in range(9)]
SITES = [Site(1), Site(2, "resid_post")]


def _worker(rank: int, size: int, port: int, model_dir: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        torch.set_num_threads(1)
        lm = load_model(model_dir)
        assert world() == (rank, size)
        means = collect(lm, PROMPTS, SITES, "last", "cov", progress=False)
        rows = collect(lm, PROMPTS, SITES, "all", "none", progress=False)
        torch.save({"mean": {s.key: means.mean(s) for s in SITES}, "cov": {s.key: means.cov(s) for s in SITES},
                    "rows": rows.rows, "index": rows.prompt_index}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_covers_everything_once():
    ps = PromptSet(tuple(PROMPTS))
    parts = [shard(ps, r, 3) for r in range(3)]
    assert sorted(p for part in parts for p in part.prompts) == sorted(PROMPTS)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_match_one_process(llama, tmp_path):
    llama.model.save_pretrained(tmp_path / "model")
    llama.tokenizer.save_pretrained(tmp_path / "model")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "model"), str(tmp_path)), nprocs=2, join=True)
    single = collect(llama, PROMPTS, SITES, "last", "cov", progress=False)
    single_rows = collect(llama, PROMPTS, SITES, "all", "none", progress=False)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for s in SITES:
            assert torch.allclose(got["mean"][s.key], single.mean(s), atol=1e-6)
            assert torch.allclose(got["cov"][s.key], single.cov(s), atol=1e-6)
            assert torch.allclose(got["rows"][s.key], single_rows.rows[s.key], atol=1e-5)
        assert torch.equal(got["index"], single_rows.prompt_index)
