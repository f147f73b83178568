"""Parity with peer packages that install from PyPI (optional extras; skipped when absent).

* steering-vectors (pinned 0.12.2): a vector it holds loads in ours and steers identically, and the reverse.
* repeng (pinned 0.4.0): it imports ``np.float_``, removed in NumPy 2, so on a NumPy 2 environment
  it cannot import and its test skips with that reason.
* IBM activation-steering (.svec) is not on PyPI: no parity test can run (round trips only, test_formats.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetyscope.activations.sites import Site
from safetyscope.directions import Direction, DirectionSet
from safetyscope.interop import convert, from_steering_vector, read_directions, to_steering_vector
from safetyscope.interventions.hooks import add


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> object:
    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny

    return load_model(save_tiny("llama", tmp_path_factory.mktemp("m") / "llama"), dtype="float32")


IDS = torch.tensor([[5, 17, 33, 8, 61, 12, 40]])


def _logits(lm: object) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(IDS).logits  # type: ignore[attr-defined]


def test_steering_vectors_object_steers_like_ours(lm: object, tmp_path: Path) -> None:
    sv_mod = pytest.importorskip("steering_vectors")
    g = torch.Generator().manual_seed(1)
    theirs = sv_mod.SteeringVector(
        layer_activations={1: 3.0 * torch.randn(32, generator=g)}, layer_type="decoder_block"
    )
    ours = from_steering_vector(theirs)
    d = ours.directions[0]
    assert d.site == Site(1, "resid_post")
    base = _logits(lm)
    with theirs.apply(lm.model, multiplier=1.0):  # type: ignore[attr-defined]
        want = _logits(lm)
    with add(lm, d):  # type: ignore[arg-type]
        got = _logits(lm)
    assert (want - base).abs().max() > 1e-2  # the vector does something
    assert torch.allclose(got, want, atol=1e-5)
    # and through our file format for it
    (tmp_path / "in.safetensors").unlink(missing_ok=True)
    ours.save(tmp_path / "in.safetensors")
    res = convert(tmp_path / "in.safetensors", tmp_path / "sv.safetensors", "steering-vectors")
    again = to_steering_vector(read_directions(res.out)[0])
    with again.apply(lm.model, multiplier=1.0):  # type: ignore[attr-defined]
        assert torch.allclose(_logits(lm), want, atol=1e-5)


def test_ours_steers_like_steering_vectors(lm: object) -> None:
    pytest.importorskip("steering_vectors")
    v = torch.linspace(-1, 1, 32, dtype=torch.float64)
    d = Direction(
        "diff_means", 2, v / v.norm(), raw_norm=2.0, mean_gap=-2.5, point="resid_pre"
    )  # = resid_post 1
    sv = to_steering_vector(DirectionSet("diff_means", [d]))
    assert list(sv.layer_activations) == [1]
    with add(lm, d):  # type: ignore[arg-type]
        want = _logits(lm)
    with sv.apply(lm.model):  # type: ignore[attr-defined]
        got = _logits(lm)
    assert torch.allclose(got, want, atol=1e-5)


def test_repeng_control_vector_parity(lm: object, tmp_path: Path) -> None:
    try:
        import repeng
    except Exception as exc:  # repeng 0.4.0 fails on NumPy 2 with AttributeError (np.float_)
        pytest.skip(f"repeng does not import here: {type(exc).__name__}: {exc}")
    import numpy as np

    cv = repeng.ControlVector(model_type="llama", directions={1: np.linspace(-1, 1, 32, dtype=np.float32)})
    cv.export_gguf(str(tmp_path / "r.gguf"))
    d = read_directions(tmp_path / "r.gguf")[0].directions[0]
    assert d.site == Site(1, "resid_post")
    model = repeng.ControlModel(lm.model, [1])  # type: ignore[attr-defined]
    model.set_control(cv, 1.0)
    want = model(IDS).logits.detach()
    model.reset()
    with add(lm, d):  # type: ignore[arg-type]
        assert torch.allclose(_logits(lm), want, atol=1e-5)
    convert(tmp_path / "r.gguf", tmp_path / "ours.safetensors")
    back = repeng.ControlVector.import_gguf(
        str(convert(tmp_path / "ours.safetensors", tmp_path / "o.gguf", "llamacpp").out)
    )
    assert np.allclose(back.directions[1], cv.directions[1], atol=1e-6)
    model.unwrap()
