import os

import pytest

from safetyscope.errors import BusyError, OutputExistsError, UnsafeOutputError
from safetyscope.model.tiny import save_tiny
from safetyscope.outputs import atomic_file, check_output, looks_ours, output_lock


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny("gpt2", tmp_path_factory.mktemp("outputs") / "gpt2")


def test_outputs_never_touch_inputs_whatever_force(model_dir, tmp_path):
    for out, rel in ((model_dir, "is the input"), (model_dir / "w.safetensors", "is inside the input"),
                     (model_dir.parent, "contains the input")):
        for force in (False, True):
            with pytest.raises(UnsafeOutputError, match=rel):
                check_output(out, force=force, kind="dir", inputs=[model_dir])
    prompts = tmp_path / "p.txt"
    prompts.write_text("x")
    with pytest.raises(UnsafeOutputError, match="is the input"):
        check_output(prompts, force=True, kind="file", inputs=[str(prompts), None, "not-a-path"])


def test_model_directories_are_never_written_into(model_dir):
    with pytest.raises(UnsafeOutputError, match="inside the model directory"):
        check_output(model_dir / "report.json", force=True, kind="file")
    with pytest.raises(UnsafeOutputError, match="did not write"):
        check_output(model_dir, force=True, kind="dir")


def test_force_replaces_only_our_outputs(tmp_path):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("precious")
    with pytest.raises(OutputExistsError):
        check_output(foreign, force=False, kind="dir")
    with pytest.raises(UnsafeOutputError, match="does not look like a safetyscope output"):
        check_output(foreign, force=True, kind="dir")
    assert not looks_ours(foreign)
    (foreign / "results.json").write_text("{}")
    assert looks_ours(foreign) and check_output(foreign, force=True, kind="dir") == foreign
    assert check_output(foreign, force=False, kind="dir", resume_ok=True) == foreign
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output(empty, force=False, kind="dir") == empty


def test_kind_and_writability_fail_before_work(tmp_path):
    f = tmp_path / "f.json"
    f.write_text("{}")
    with pytest.raises(UnsafeOutputError, match="is a file; give a folder"):
        check_output(f, force=True, kind="dir")
    with pytest.raises(UnsafeOutputError, match="is a directory; give a file path"):
        check_output(tmp_path, force=True, kind="file")
    with pytest.raises(UnsafeOutputError, match="is a file, not a folder"):
        check_output(f / "sub" / "x.json", force=False, kind="file")
    with pytest.raises(OutputExistsError, match="--force"):
        check_output(f, force=False, kind="file")
    assert check_output(f, force=True, kind="file") == f
    if os.geteuid() != 0:  # root writes anywhere: the permission probe cannot fail for it
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(UnsafeOutputError, match="not writable"):
            check_output(ro / "x.json", force=False, kind="file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]  # the probe leaves nothing behind


def test_atomic_file_leaves_no_debris(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_output_lock_refuses_a_second_holder(tmp_path):
    out = tmp_path / "audit"
    with output_lock(out):
        with pytest.raises(BusyError, match=f"pid {os.getpid()}"), output_lock(out):
            pass
    with output_lock(out):  # released on exit
        pass
    assert not out.exists()  # the lock file lives in the cache, not in the user's folder
