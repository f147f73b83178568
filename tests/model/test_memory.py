import pytest
import torch

from safetyscope.model.memory import bytes_per_token, free_memory_bytes, token_budget
from safetyscope.model.tiny import tiny_config


def test_bytes_per_token_counts_dtype_width_and_kept_logits():
    cfg = tiny_config("llama", vocab_size=262_144)
    f32 = bytes_per_token(cfg, torch.float32, logits="none")
    assert f32 == 4 * (4 * 32 + 2 * 2 * 8 + 3 * 64) + 1
    assert bytes_per_token(cfg, torch.bfloat16, logits="none") == (f32 - 1) // 2 + 1
    # a 262,144-token vocabulary: full logits dominate, last-position logits barely count
    assert bytes_per_token(cfg, torch.float32, logits="all") == f32 + 4 * 262_144
    assert bytes_per_token(cfg, torch.float32, logits="last", seq_len=256) == f32 + 4 * 1024
    with pytest.raises(ValueError, match="logits must be"):
        bytes_per_token(cfg, torch.float32, logits="some")


def test_budget_scales_with_memory_and_model_size_and_is_clamped():
    small, big = tiny_config("llama"), tiny_config("llama", hidden_size=1536, intermediate_size=8960, head_dim=128)
    gib = 1 << 30
    b_small = token_budget(small, torch.float32, free_bytes=gib, max_tokens=10**9)
    b_big = token_budget(big, torch.float32, free_bytes=gib, max_tokens=10**9)
    assert b_small > 40 * b_big  # a wider model gets fewer tokens per pass
    assert token_budget(big, torch.bfloat16, free_bytes=gib, max_tokens=10**9) == pytest.approx(2 * b_big, rel=0.01)
    assert token_budget(big, torch.float32, free_bytes=0) == 256
    assert token_budget(small, torch.float32, free_bytes=1 << 40) == 65536


def test_free_memory_reads_meminfo(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert free_memory_bytes("cpu", str(info)) == 2048 * 1024
    assert free_memory_bytes("cpu", str(tmp_path / "none")) is None
