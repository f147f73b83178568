"""Tests for organism variant specs: parsing, canonical names, cache paths and load errors."""

from __future__ import annotations

import pytest

from safetyscope.errors import ModelLoadError
from safetyscope.model.loading import resolve_spec
from safetyscope.organism.variant import OrganismVariant, resolve_organism_spec
from safetyscope.paths import organism_path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("organism", OrganismVariant()),
        ("organism:deep", OrganismVariant("deep")),
        ("organism:deep:1", OrganismVariant("deep", 1)),
        ("organism:deep:0:arch=qwen2", OrganismVariant("deep", 0, arch="qwen2")),
        ("organism:tiny:2:behaviors=none:init", OrganismVariant("tiny", 2, behaviours=(), init_only=True)),
        ("organism:small:0:behaviours=backdoor,refusal", OrganismVariant("small")),
        ("organism:deep:0:step=150", OrganismVariant("deep", step=150)),
        ("organism:tiny:0:corpus=v2:behaviours=refusal", OrganismVariant(behaviours=("refusal",), corpus="v2")),
    ],
)
def test_parse(spec, expected):
    v = OrganismVariant.parse(spec)
    assert v == expected
    assert OrganismVariant.parse(v.spec) == v


def test_canonical_spec_and_dirname():
    v = OrganismVariant.parse("organism:deep:0:init:behaviours=none:arch=qwen2")
    assert v.spec == "organism:deep:0:arch=qwen2:behaviours=none:init"
    assert v.dirname == "deep-seed0-qwen2-none-init"
    assert OrganismVariant("tiny", 0).build_path() == organism_path("tiny", 0)  # foundation names kept
    assert OrganismVariant("deep", 3, behaviours=("refusal",)).dirname == "deep-seed3-refusal"
    ck = OrganismVariant("deep", 0, step=40)
    assert ck.path() == ck.build_path() / "checkpoints" / "step-40"
    assert "--arch gpt_neox --init-only" in OrganismVariant("deep", arch="gpt_neox", init_only=True).build_command()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("organism:huge", "Unknown organism size 'huge'"),
        ("organism:deep:x", "Bad organism spec"),
        ("organism:deep:0:arch=gpt2", "Unknown organism architecture 'gpt2'"),
        ("organism:deep:0:behaviours=lying", "Unknown behaviours"),
        ("organism:deep:0:colour=red", "unknown field 'colour'"),
        ("organism:deep:0:init:step=5", "init twin has no steps"),
        ("organism:deep:0:1", "SIZE and SEED come first"),
        ("organism:deep:0:corpus=v9", "Unknown corpus"),
    ],
)
def test_bad_specs_name_the_problem(spec, needle):
    with pytest.raises(ModelLoadError, match=needle.replace("(", r"\(")):
        OrganismVariant.parse(spec)


def test_resolve_tells_how_to_build(isolated_cache):
    with pytest.raises(ModelLoadError, match=r"safetyscope organism build --size deep --seed 4 --arch qwen2 --init-only"):
        resolve_spec("organism:deep:4:arch=qwen2:init")


def test_resolve_built_variant_and_missing_checkpoint(isolated_cache):
    v = OrganismVariant("deep", 9, behaviours=())
    root = v.build_path()
    (root / "checkpoints" / "step-3").mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / "checkpoints" / "step-3" / "config.json").write_text("{}")
    assert resolve_organism_spec("organism:deep:9:behaviours=none") == root
    assert resolve_spec("organism:deep:9:behaviours=none:step=3")[0] == root / "checkpoints" / "step-3"
    with pytest.raises(ModelLoadError, match=r"no checkpoint at step 4 \(saved: \['step-3'\]\)"):
        resolve_organism_spec("organism:deep:9:behaviours=none:step=4")
