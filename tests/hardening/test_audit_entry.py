"""The audit's entry point: checks and lock before any work, and honest timings on resume."""

import json

import pytest

from safetyscope.errors import BusyError, ConfigError, UnsafeOutputError
from safetyscope.model.tiny import save_tiny
from safetyscope.outputs import output_lock
from safetyscope.pipelines.audit import run_audit
from safetyscope.pipelines.audit_config import AuditConfig

CFG = AuditConfig(n_train=4, n_val=2, n_test=2, n_backdoor=2, max_new_tokens=2, backdoor_tokens=2,
                  methods=("diff_means",))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-entry")
    model = save_tiny("llama", root / "model")
    harmful, harmless = root / "h.txt", root / "b.txt"
    harmful.write_text("\n".join(f"explain how to do bad thing {i}" for i in range(16)))
    harmless.write_text("\n".join(f"explain how to bake bread {i}" for i in range(16)))
    return model, harmful, harmless


def test_resumed_audit_reports_work_and_this_run(setup, tmp_path):
    model, harmful, harmless = setup
    out = tmp_path / "audit"
    first = run_audit(str(model), out, harmful=harmful, harmless=harmless, config=CFG, progress=False)
    t1 = first.results["timings"]
    assert not first.resumed and t1["work"]["seconds"] >= t1["behavior"]["seconds"] > 0
    again = run_audit(str(model), out, harmful=harmful, harmless=harmless, config=CFG, progress=False)
    t2 = again.results["timings"]
    assert again.resumed and t2["behavior"]["cached"] and t2["work"]["cached"]
    steps = [k for k in t1 if k not in ("total", "work", "load", "report")]  # the report is redrawn each run
    assert all(t2[k]["seconds"] == pytest.approx(t1[k]["seconds"]) for k in steps)  # original cost kept
    assert t2["work"]["seconds"] == pytest.approx(sum(t2[k]["seconds"] for k in [*steps, "load"]))
    assert t2["total"]["seconds"] < t2["work"]["seconds"]  # this run only loaded and read the cache
    on_disk = json.loads((out / "results.json").read_text())["timings"]
    assert on_disk["work"]["seconds"] == pytest.approx(t2["work"]["seconds"])


def test_second_concurrent_audit_refuses_before_work(setup, tmp_path):
    model, harmful, harmless = setup
    out = tmp_path / "busy"
    with output_lock(out, "audit"), pytest.raises(BusyError, match="Another audit is writing"):
        run_audit(str(model), out, harmful=harmful, harmless=harmless, config=CFG, progress=False)
    assert not out.exists()


def test_bad_trigger_and_unsafe_out_fail_before_loading(setup, tmp_path):
    model = setup[0]
    with pytest.raises(ConfigError, match="--trigger is empty"):
        run_audit("no-such-model-is-loaded", tmp_path / "a", trigger=" ", config=CFG)
    with pytest.raises(ConfigError, match="equals or contains the trigger"):
        run_audit("no-such-model-is-loaded", tmp_path / "a", trigger="|dev|", config=CFG)
    with pytest.raises(UnsafeOutputError, match="is inside the input"):
        run_audit(str(model), model / "audit", force=True, config=CFG)
    assert not (model / "audit").exists() and not (tmp_path / "a").exists()
