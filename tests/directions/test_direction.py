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


def test_direction_records_its_site_and_model_and_keeps_the_file_layout(tmp_path, llama):
    from safetensors import safe_open

    from safetyscope.activations import Site
    from safetyscope.directions import collect_contrast

    contrast = collect_contrast(llama, ["a b c", "d e f", "g h"], ["x y", "z w v", "u t"], layers=[0, 2])
    assert contrast.point == "resid_post" and contrast.sites() == [Site(0, "resid_post"), Site(2, "resid_post")]
    dset = contrast.directions("diff_means")
    d = dset.at(2)
    assert d.site == Site(2, "resid_post") and d.layer == 2
    assert d.model_fingerprint == llama.fingerprint()
    path = d.save(tmp_path / "d.safetensors")
    with safe_open(str(path), "pt") as fh:
        assert fh.get_tensor("d0.vector").shape == (32,)  # layout kept: d0.vector is the 1-D direction
    back = Direction.load(path)
    assert back.site == d.site and back.model_fingerprint == d.model_fingerprint
    assert Direction.from_dict(json.loads(json.dumps(d.to_dict()))).site == d.site
    assert d.at_site(Site(3, "resid_pre")).site == Site(3, "resid_pre")
    with pytest.raises(DirectionError, match="Unknown stream point"):
        Direction("diff_means", 1, d.vector, 1.0, 1.0, point="resid_middle")


def test_files_written_before_sites_were_recorded_still_load(tmp_path):
    from safetyscope.activations import Site

    v = torch.ones(4, dtype=torch.float64) / 2
    old = Direction("diff_means", 3, v, 1.0, 1.0, provenance={"selection": {"layer": 3}})
    path = old.save(tmp_path / "old.safetensors")
    # strip the new keys from the metadata, as an old file would have
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["safetyscope.directions"])
    for m in meta["directions"]:
        for key in ("point", "site", "model_fingerprint"):
            m.pop(key)
    save_file({"d0.vector": v}, str(path), metadata={"safetyscope.directions": json.dumps(meta)})
    assert Direction.load(path).site == Site(3, "resid_pre")  # `directions select` read resid_pre


def test_set_with_shared_tensors_saves_and_loads(tmp_path):
    import torch

    from safetyscope.directions.direction import Direction, DirectionSet

    basis = torch.eye(4, dtype=torch.float64)[:2]
    shared = basis[0]  # a view into the basis, and the same tensor for two directions
    dirs = [Direction("diff_means", layer, shared, 1.0, 0.5, basis=basis, point="resid_pre") for layer in (0, 1)]
    path = DirectionSet("diff_means", dirs).save(tmp_path / "d.safetensors")
    loaded = DirectionSet.load(path)
    assert torch.equal(loaded.directions[1].vector, shared) and torch.equal(loaded.directions[0].basis, basis)
