import json

import pytest
import torch

from safetyscope.directions import Direction, DirectionError, DirectionSet, extract


def sample_set():
    g = torch.Generator().manual_seed(0)
    harmful = torch.randn(20, 3, 8, generator=g) + 1.0
    harmless = torch.randn(20, 3, 8, generator=g)
    return extract(harmful, harmless, "subspace", k=2, layers=[2, 4, 6], provenance={"model_fingerprint": "f00"})


def test_direction_set_roundtrips_through_safetensors(tmp_path):
    dset = sample_set()
    path = dset.save(tmp_path / "dirs.safetensors")
    back = DirectionSet.load(path)
    assert back.method == "subspace" and back.layers == [2, 4, 6]
    assert torch.equal(back.vectors(), dset.vectors())
    assert torch.equal(back.at(4).basis, dset.at(4).basis)
    assert back.raw_norms() == dset.raw_norms()
    assert back.provenance["model_fingerprint"] == "f00"
    assert back.at(6).provenance["fit"]["k"] == 2


def test_direction_roundtrips_through_file_and_json(tmp_path):
    d = extract(torch.randn(10, 5) + 1, torch.randn(10, 5), "diff_means", layers=3)
    assert d.layer == 3
    back = Direction.load(d.save(tmp_path / "d.safetensors"))
    assert torch.equal(back.vector, d.vector) and back.layer == 3 and back.mean_gap == d.mean_gap
    again = Direction.from_dict(json.loads(json.dumps(d.to_dict())))
    assert torch.allclose(again.vector, d.vector) and again.raw_norm == d.raw_norm


def test_load_errors(tmp_path):
    with pytest.raises(DirectionError, match="No such"):
        DirectionSet.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(DirectionError, match="not a safetyscope directions file"):
        DirectionSet.load(tmp_path / "plain.safetensors")
    sample_set().save(tmp_path / "three.safetensors")
    with pytest.raises(DirectionError, match="holds 3 directions"):
        Direction.load(tmp_path / "three.safetensors")


def test_set_helpers():
    dset = sample_set()
    assert len(dset) == 3 and [d.layer for d in dset] == [2, 4, 6]
    with pytest.raises(DirectionError, match="No direction at layer 5"):
        dset.at(5)
    regrouped = DirectionSet.from_directions(list(reversed(dset.directions)))
    assert regrouped.layers == [2, 4, 6]
    with pytest.raises(DirectionError, match="Duplicate"):
        DirectionSet("x", [dset.at(2), dset.at(2)])
    d = dset.at(2)
    assert d.cosine(d) == pytest.approx(1.0) and d.cosine(-d.vector) == pytest.approx(-1.0)
    assert d.project(torch.stack([d.vector, -d.vector])).tolist() == pytest.approx([1.0, -1.0])
