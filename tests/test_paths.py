import pytest

from safetyscope.errors import OutputExistsError, UnsafeOutputError
from safetyscope.paths import atomic_output_dir, cache_dir, check_output_dir, organism_path


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYSCOPE_CACHE", str(tmp_path / "c"))
    assert cache_dir("a", "b") == tmp_path / "c" / "a" / "b" and (tmp_path / "c" / "a" / "b").is_dir()
    assert organism_path("small", 3) == tmp_path / "c" / "organisms" / "small-seed3"


def test_atomic_dir_appears_only_on_success(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "partial.txt").write_text("x")
        raise RuntimeError("crash mid-write")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_output_dir(out) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (out / "done.txt").read_text() == "ok"


def test_existing_output_is_refused_then_replaced_with_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(UnsafeOutputError, match="does not look like a safetyscope output"), \
            atomic_output_dir(out, force=True):
        pass  # --force never replaces a folder that is not ours
    (out / "results.json").write_text("{}")  # now it looks like one of our outputs
    with pytest.raises(OutputExistsError, match="--force"):
        check_output_dir(out, force=False)
    with pytest.raises(OutputExistsError), atomic_output_dir(out):
        pass
    assert (out / "keep.txt").read_text() == "precious"
    with pytest.raises(RuntimeError), atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("crash")
    assert (out / "keep.txt").read_text() == "precious"  # a failed forced write loses nothing
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    check_output_dir(tmp_path / "empty-or-missing", force=False)
