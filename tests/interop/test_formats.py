"""Round trips through every direction format; detection from content; clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from safetyscope.directions import Direction, DirectionSet
from safetyscope.interop import FormatError, convert, detect_format, read_directions, roundtrip_error
from safetyscope.interop.formats import scaled_vectors

PEERS = ("llamacpp", "svec", "refusal-direction", "steering-vectors")


def _dset(layers: list[int], point: str = "resid_post", d: int = 32, seed: int = 0) -> DirectionSet:
    g = torch.Generator().manual_seed(seed)
    dirs = []
    for layer in layers:
        v = torch.randn(d, generator=g, dtype=torch.float64)
        dirs.append(
            Direction(
                "diff_means",
                layer,
                v / v.norm(),
                raw_norm=3.5 + layer,
                mean_gap=2.25 + layer,
                provenance={"eoi_position": -2, "model_type": "llama"},
                point=point,
                model_fingerprint="abc123",
            )
        )
    return DirectionSet("diff_means", dirs, {"model_type": "llama", "note": "test"})


def _out(tmp: Path, fmt: str) -> Path:
    return (
        tmp
        / {
            "llamacpp": "v.gguf",
            "svec": "v.svec",
            "refusal-direction": "rd",
            "steering-vectors": "sv.safetensors",
            "safetyscope": "ours.safetensors",
        }[fmt]
    )


@pytest.mark.parametrize("fmt", PEERS)
def test_roundtrip_restores_everything(tmp_path: Path, fmt: str) -> None:
    layers = [2] if fmt == "refusal-direction" else [1, 2]
    src = _dset(layers).save(tmp_path / "in.safetensors")
    res = convert(src, _out(tmp_path, fmt), fmt)
    assert res.source_format == "safetyscope" and res.target_format == fmt
    assert res.roundtrip_max_rel < 1e-6  # float32 storage of the scaled vector
    assert detect_format(res.out) == fmt
    back_res = convert(res.out, tmp_path / "back.safetensors")
    assert back_res.source_format == fmt
    a, b = DirectionSet.load(src), DirectionSet.load(tmp_path / "back.safetensors")
    for x, y in zip(a, b, strict=True):  # our description comes back through the peer's file
        assert (x.method, x.site, x.model_fingerprint, x.raw_norm, x.mean_gap) == (
            y.method,
            y.site,
            y.model_fingerprint,
            y.raw_norm,
            y.mean_gap,
        )
        assert torch.allclose(x.vector, y.vector, atol=1e-6)
        assert x.provenance["eoi_position"] == y.provenance["eoi_position"]


@pytest.mark.parametrize("fmt", PEERS)
def test_sign_and_magnitude_of_added_vector_kept(tmp_path: Path, fmt: str) -> None:
    d = _dset([3]).directions[0]
    neg = DirectionSet(
        "diff_means",
        [
            Direction(
                "diff_means", 3, d.vector, 4.0, -1.75, provenance={"eoi_position": -1}, point="resid_post"
            )
        ],
        {"model_type": "llama"},
    )
    res = convert(neg.save(tmp_path / "in.safetensors"), _out(tmp_path, fmt), fmt)
    back, _ = read_directions(res.out)
    want = scaled_vectors(neg)[3]
    got = scaled_vectors(back)[3]
    assert torch.allclose(got, want, atol=1e-6) and float(got @ d.vector) < 0


def test_foreign_file_without_our_metadata_reads_as_scaled_vector(tmp_path: Path) -> None:
    v = torch.arange(1, 9, dtype=torch.float32) * 0.5
    (tmp_path / "x.svec").write_text(
        json.dumps(
            {"model_type": "qwen2", "directions": {"4": v.tolist()}, "explained_variances": {"4": 0.9}}
        )
    )
    dset, fmt = read_directions(tmp_path / "x.svec")
    d = dset.directions[0]
    assert fmt == "svec" and d.site is not None and d.site.key == "L4.resid_pre"  # where IBM adds it
    assert d.mean_gap == pytest.approx(float(v.norm())) and d.method == "imported:svec"
    assert torch.allclose(d.vector * d.mean_gap, v.double())
    assert d.provenance["model_type"] == "qwen2"


def test_stale_metadata_is_not_trusted(tmp_path: Path) -> None:
    out = convert(_dset([2]).save(tmp_path / "in.safetensors"), tmp_path / "v.svec", "svec").out
    data = json.loads(Path(out).read_text())
    data["directions"]["3"] = [2 * x for x in data["directions"]["3"]]  # a peer tool doubled it
    Path(out).write_text(json.dumps(data))
    d = read_directions(out)[0].directions[0]
    assert d.method == "imported:svec" and d.mean_gap == pytest.approx(2 * (2.25 + 2), rel=1e-6)


def test_detection_ignores_extension(tmp_path: Path) -> None:
    res = convert(_dset([1, 2]).save(tmp_path / "in.safetensors"), tmp_path / "a.gguf", "llamacpp")
    disguised = tmp_path / "vector.json"
    disguised.write_bytes(Path(res.out).read_bytes())
    assert detect_format(disguised) == "llamacpp"
    (tmp_path / "junk.gguf").write_text('{"hello": 1}')
    with pytest.raises(FormatError, match=r"not an \.svec"):
        detect_format(tmp_path / "junk.gguf")


def test_refusals(tmp_path: Path) -> None:
    two = _dset([1, 2]).save(tmp_path / "two.safetensors")
    with pytest.raises(FormatError, match="--layer"):
        convert(two, tmp_path / "rd", "refusal-direction")
    one = convert(two, tmp_path / "rd", "refusal-direction", layer="2")
    assert json.loads((tmp_path / "rd" / "direction_metadata.json").read_text()) == {"pos": -2, "layer": 3}
    assert one.sites == ["L2.resid_post"]
    pre0 = DirectionSet(
        "x",
        [Direction("x", 0, torch.ones(32, dtype=torch.float64) / 32**0.5, 1.0, 1.0, point="resid_pre")],
        {"model_type": "llama"},
    ).save(tmp_path / "pre0.safetensors")
    with pytest.raises(FormatError, match="embedding output"):
        convert(pre0, tmp_path / "p.gguf", "llamacpp")
    no_family = DirectionSet(
        "x", [Direction("x", 2, torch.ones(32, dtype=torch.float64) / 32**0.5, 1.0, 1.0, point="resid_post")]
    ).save(tmp_path / "nf.safetensors")
    with pytest.raises(FormatError, match="--model"):
        convert(no_family, tmp_path / "nf.gguf", "llamacpp")
    with pytest.raises(FormatError, match="--pos"):
        convert(no_family, tmp_path / "nf_rd", "refusal-direction")
    nosite = DirectionSet(
        "x",
        [Direction("x", None, torch.ones(32, dtype=torch.float64) / 32**0.5, 1.0, 1.0)],
        {"model_type": "llama"},
    ).save(tmp_path / "ns.safetensors")
    with pytest.raises(FormatError, match="no stream point"):
        convert(nosite, tmp_path / "ns.gguf", "llamacpp", layer="4")
    assert convert(nosite, tmp_path / "ns.gguf", "llamacpp", layer="4.resid_post").sites == ["L4.resid_post"]
    sub = Direction(
        "x",
        2,
        torch.eye(32, dtype=torch.float64)[0],
        1.0,
        1.0,
        basis=torch.eye(32, dtype=torch.float64)[:2],
        point="resid_post",
    )
    with pytest.raises(FormatError, match="subspace"):
        convert(
            DirectionSet("x", [sub], {"model_type": "llama"}).save(tmp_path / "sub.safetensors"),
            tmp_path / "sub.svec",
            "svec",
        )
    with pytest.raises(FormatError, match="--to"):
        convert(two, tmp_path / "x.bin")


def test_model_option_checks_width_and_records_family(tmp_path: Path) -> None:
    from safetyscope.model.tiny import save_tiny

    model = save_tiny("qwen2", tmp_path / "m")
    nf = DirectionSet(
        "x", [Direction("x", 2, torch.ones(32, dtype=torch.float64) / 32**0.5, 1.0, 1.5, point="resid_post")]
    ).save(tmp_path / "nf.safetensors")
    convert(nf, tmp_path / "v.gguf", "llamacpp", model=str(model))
    import gguf

    field = gguf.GGUFReader(str(tmp_path / "v.gguf")).get_field("controlvector.model_hint")
    assert bytes(field.parts[field.data[0]]).decode() == "qwen2"
    wide = DirectionSet(
        "x", [Direction("x", 2, torch.ones(64, dtype=torch.float64) / 8, 1.0, 1.0, point="resid_post")]
    )
    with pytest.raises(FormatError, match="d_model 32"):
        convert(wide.save(tmp_path / "w.safetensors"), tmp_path / "w.gguf", "llamacpp", model=str(model))


def test_roundtrip_error_is_measured_not_assumed() -> None:
    a = _dset([1])
    b = _dset([1], seed=5)
    assert roundtrip_error(a, b)[0] > 0.1
