"""EAP-IG split over two gloo ranks gives the one-process scores."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

CLEAN = ["abc defg", "jkm nopq", "rst uvwx"]
CORRUPT = ["xyz defg", "tuv nopq", "abc uvwx"]


def _worker(rank: int, size: int, port: int, model_dir: str, out_dir: str) -> None:
    from safetyscope import load_model
    from safetyscope.circuits import circuit_metric, edge_attribution, encode_pairs

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        torch.set_num_threads(1)
        lm = load_model(model_dir)
        pairs = encode_pairs(lm, CLEAN, CORRUPT, chat=False)
        met = circuit_metric("logit_diff", lm.tokenizer, answer="a", wrong="b")
        g = edge_attribution(lm, pairs, met, method="eap-ig", steps=2, batch_size=1)
        torch.save({"scores": g.scores, "passes": g.meta["passes"]}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_ranks_match_one_process(llama, tmp_path):
    from safetyscope.circuits import circuit_metric, edge_attribution, encode_pairs

    llama.model.save_pretrained(tmp_path / "model")
    llama.tokenizer.save_pretrained(tmp_path / "model")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "model"), str(tmp_path)), nprocs=2, join=True)
    pairs = encode_pairs(llama, CLEAN, CORRUPT, chat=False)
    met = circuit_metric("logit_diff", llama.tokenizer, answer="a", wrong="b")
    single = edge_attribution(llama, pairs, met, method="eap-ig", steps=2, batch_size=1)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["scores"], single.scores, atol=1e-7, rtol=1e-5)
        assert got["passes"] == single.meta["passes"] == 6
