import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from safetyscope.data.tensors import TensorFileError, load_pair, load_tensor


def test_formats_load_as_float64(tmp_path):
    x = torch.randn(4, 3, 8)
    torch.save(x.half(), tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", x.numpy().astype(np.float16))
    save_file({"acts": x.to(torch.bfloat16)}, str(tmp_path / "c.safetensors"))
    np.savez(tmp_path / "d.npz", acts=x.numpy())
    for name, dtype in (("a.pt", "float16"), ("b.npy", "float16"), ("c.safetensors", "bfloat16"), ("d.npz", "float32")):
        t = load_tensor(tmp_path / name)
        assert t.values.dtype == torch.float64 and t.values.shape == (4, 3, 8), name
        assert t.source_dtype == dtype
        assert torch.allclose(t.values, x.double(), atol=0.05), name


def test_keys(tmp_path):
    save_file({"h": torch.zeros(3, 4), "l": torch.ones(3, 4)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(TensorFileError, match="choose one with --key"):
        load_tensor(tmp_path / "two.safetensors")
    assert load_tensor(tmp_path / "two.safetensors", "l").values.sum() == 12
    with pytest.raises(TensorFileError, match="no tensor 'x'"):
        load_tensor(tmp_path / "two.safetensors", "x")
    torch.save({"acts": torch.ones(2, 3), "meta": 3}, tmp_path / "d.pt")
    assert load_tensor(tmp_path / "d.pt").key == "acts"
    torch.save(torch.ones(2, 3), tmp_path / "t.pt")
    with pytest.raises(TensorFileError, match="drop --key"):
        load_tensor(tmp_path / "t.pt", "acts")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_to_unpickle(tmp_path):
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(TensorFileError, match="will not unpickle"):
        load_tensor(tmp_path / "evil.pt")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TensorFileError, match="unpickling"):
        load_tensor(tmp_path / "obj.npy")


def test_file_errors(tmp_path):
    with pytest.raises(TensorFileError, match="No such tensor file"):
        load_tensor(tmp_path / "missing.pt")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(TensorFileError, match="Unsupported tensor file"):
        load_tensor(tmp_path / "x.csv")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(TensorFileError, match="not a readable safetensors"):
        load_tensor(tmp_path / "bad.safetensors")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(TensorFileError, match="not a readable torch file"):
        load_tensor(tmp_path / "bad.pt")
    bad = torch.zeros(3, 2, dtype=torch.float16)
    bad[1, 0] = float("inf")
    torch.save(bad, tmp_path / "inf.pt")
    with pytest.raises(TensorFileError, match=r"1 NaN/inf values \(rows \[1\]"):
        load_tensor(tmp_path / "inf.pt")


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ((5, 4), (6, 4), "paired by index"),
        ((5, 4), (5, 3), "Hidden sizes differ"),
        ((5, 2, 4), (5, 3, 4), "Layer counts differ"),
        ((5, 2, 4), (5, 4), "layer axis"),
        ((5,), (5,), "expected"),
        ((1, 4), (1, 4), "at least 2"),
    ],
)
def test_pair_checks(tmp_path, a, b, match):
    torch.save(torch.zeros(a), tmp_path / "a.pt")
    torch.save(torch.zeros(b), tmp_path / "b.pt")
    with pytest.raises(TensorFileError, match=match):
        load_pair(tmp_path / "a.pt", tmp_path / "b.pt")


def test_unpaired_allowed_when_asked(tmp_path):
    torch.save(torch.zeros(5, 4), tmp_path / "a.pt")
    torch.save(torch.zeros(7, 4), tmp_path / "b.pt")
    a, b = load_pair(tmp_path / "a.pt", tmp_path / "b.pt", paired=False)
    assert a.values.shape[0] == 5 and b.values.shape[0] == 7
