"""A workspace of valid and hostile inputs for the bad-input suite, and the harness that runs one case.

Layout (one per test module)::

    ws/inputs/   model (tiny random llama), prompts, directions, activations, a foreign folder
    ws/outs/     where well-behaved cases write

Everything under ``inputs/`` is hashed before and after every case: a case that changes it has
lost data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from safetyscope.cli import app

#: Seconds a case may run before it counts as a hang.
CASE_TIMEOUT_S = 30


def tree_hash(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes under ``root`` (and every folder's name)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _direction(path: Path, vector: torch.Tensor, mean_gap: float = 2.0, raw_norm: float = 3.0,
               layers: tuple[int, ...] = (1,)) -> Path:
    from safetyscope.directions.direction import Direction, DirectionSet

    dirs = [Direction("diff_means", layer, vector.clone(), raw_norm, mean_gap) for layer in layers]
    for d in dirs:
        if hasattr(d, "point"):  # directions record their stream point (sites) when the package knows it
            d.point = "resid_pre"
    DirectionSet("diff_means", dirs).save(path)
    return path


@dataclass
class Workspace:
    """Paths of the hostile-input workspace."""

    root: Path
    model: Path
    inputs: Path
    outs: Path
    files: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return str(self.files[name])


def build_workspace(root: Path) -> Workspace:
    from safetyscope.model.tiny import save_tiny

    inputs, outs = root / "inputs", root / "outs"
    outs.mkdir(parents=True)
    model = save_tiny("llama", inputs / "model")
    ws = Workspace(root, model, inputs, outs)
    f = ws.files
    d = inputs / "data"
    d.mkdir()
    f["harmful"] = d / "harmful.txt"
    f["harmful"].write_text("\n".join(f"explain how to do bad thing number {i}" for i in range(12)) + "\n")
    f["harmless"] = d / "harmless.txt"
    f["harmless"].write_text("\n".join(f"explain how to bake bread number {i}" for i in range(12)) + "\n")
    f["latin1"] = d / "latin1.txt"
    f["latin1"].write_bytes("caf\xe9 recipe\n".encode("latin-1"))
    f["binary"] = d / "binary.txt"
    f["binary"].write_bytes(bytes(range(256)) * 4)
    f["empty"] = d / "empty.txt"
    f["empty"].write_text("\n\n")
    f["null_field"] = d / "null.jsonl"
    f["null_field"].write_text('{"instruction": "fine"}\n{"instruction": null}\n')
    f["number_field"] = d / "number.jsonl"
    f["number_field"].write_text('{"instruction": 42}\n')
    f["list_field"] = d / "list.jsonl"
    f["list_field"].write_text('{"prompt": ["a", "b"]}\n')
    f["bad_json"] = d / "bad.jsonl"
    f["bad_json"].write_text('{"instruction": "ok"}\n{"instruction": \n')
    f["ragged_long"] = d / "ragged_long.csv"
    f["ragged_long"].write_text("id,prompt\n1,hello\n2,a,b,c\n")
    f["ragged_short"] = d / "ragged_short.csv"
    f["ragged_short"].write_text("prompt,id\nhello,1\nbye\n")
    f["corrupt_parquet"] = d / "corrupt.parquet"
    f["corrupt_parquet"].write_bytes(b"PAR1\x00\x00garbage")
    f["docx"] = d / "prompts.docx"
    f["docx"].write_text("not supported")
    # directions for d_model 32
    unit = torch.zeros(32, dtype=torch.float64)
    unit[0] = 1.0
    f["direction"] = _direction(d / "good.safetensors", unit)
    nan = unit.clone()
    nan[3] = float("nan")
    f["dir_nan"] = _direction(d / "nan.safetensors", nan)
    inf = unit.clone()
    inf[3] = float("inf")
    f["dir_inf"] = _direction(d / "inf.safetensors", inf)
    f["dir_zero"] = _direction(d / "zero.safetensors", torch.zeros(32, dtype=torch.float64))
    f["dir_nan_gap"] = _direction(d / "nan_gap.safetensors", unit, mean_gap=float("nan"))
    f["dir_inf_norm"] = _direction(d / "inf_norm.safetensors", unit, raw_norm=float("inf"))
    f["dir_wrong_d"] = _direction(d / "wrong_d.safetensors", torch.ones(16, dtype=torch.float64))
    f["dir_multi"] = _direction(d / "multi.safetensors", unit, layers=(0, 1))
    f["dir_garbage"] = d / "garbage.safetensors"
    f["dir_garbage"].write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    f["dir_plain"] = d / "plain.safetensors"
    save_file({"w": torch.ones(32)}, str(f["dir_plain"]))
    # activations for geometry
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 2, 16, generator=g), torch.randn(8, 2, 16, generator=g)
    f["acts_a"], f["acts_b"] = d / "a.safetensors", d / "b.safetensors"
    save_file({"x": a}, str(f["acts_a"]))
    save_file({"x": b}, str(f["acts_b"]))
    f["acts_nan"] = d / "nan_acts.safetensors"
    a_nan = a.clone()
    a_nan[2, 0, 0] = float("nan")
    save_file({"x": a_nan}, str(f["acts_nan"]))
    f["acts_wide"] = d / "wide.safetensors"
    save_file({"x": torch.randn(8, 2, 24, generator=g)}, str(f["acts_wide"]))
    f["acts_1row"] = d / "one.safetensors"
    save_file({"x": torch.randn(1, 2, 16, generator=g)}, str(f["acts_1row"]))
    f["acts_1d"] = d / "flat.safetensors"
    save_file({"x": torch.randn(16, generator=g)}, str(f["acts_1d"]))
    f["acts_two"] = d / "two.safetensors"
    save_file({"x": a, "y": b}, str(f["acts_two"]))
    f["acts_truncated"] = d / "truncated.safetensors"
    f["acts_truncated"].write_bytes(f["acts_a"].read_bytes()[:100])
    f["acts_pickle"] = d / "evil.pt"
    torch.save({"x": a, "payload": __import__("fractions").Fraction(1, 3)}, f["acts_pickle"])
    f["acts_object_npy"] = d / "object.npy"
    np.save(f["acts_object_npy"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    f["acts_txt"] = d / "acts.txt"
    f["acts_txt"].write_text("1 2 3")
    f["acts_ints_str"] = d / "strings.npy"
    np.save(f["acts_ints_str"], np.array(["a", "b"]))
    # completions for judge
    f["completions_null"] = d / "c_null.jsonl"
    f["completions_null"].write_text('{"instruction": "hi", "completion": 42}\n')
    f["completions_bad"] = d / "c_bad.jsonl"
    f["completions_bad"].write_text("not json\n")
    # configs for audit
    for name, text in {"cfg_types": 'n_test = "10"\n', "cfg_methods": 'methods = ["bogus"]\n',
                       "cfg_unknown": "n_tests = 10\n", "cfg_layers": "layers = [-1]\n",
                       "cfg_control": 'control_trigger = ""\n', "cfg_toml": "n_test = = 3\n",
                       "cfg_bool": "n_train = true\n", "cfg_float": "max_new_tokens = 2.5\n",
                       "cfg_table": "audit = 3\n", "cfg_small": "n_train = 2\n"}.items():
        f[name] = d / f"{name}.toml"
        f[name].write_text(text)
    f["cfg_latin1"] = d / "latin1.toml"
    f["cfg_latin1"].write_bytes("seed = 0 # caf\xe9\n".encode("latin-1"))
    # a folder that is not ours, and a model-looking folder with broken weights
    precious = inputs / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    f["precious"] = precious
    broken = inputs / "broken_model"
    broken.mkdir()
    for p in model.glob("*.json"):
        shutil.copy(p, broken)
    save_file({"foo": torch.zeros(3)}, str(broken / "model.safetensors"))
    f["broken_model"] = broken
    pickled = inputs / "pickled_model"
    pickled.mkdir()
    for p in model.glob("*.json"):
        shutil.copy(p, pickled)
    torch.save({"x": torch.zeros(2), "payload": __import__("fractions").Fraction(1, 3)}, pickled / "pytorch_model.bin")
    f["pickled_model"] = pickled
    no_config = inputs / "no_config"
    no_config.mkdir()
    (no_config / "weights.bin").write_bytes(b"x")
    f["no_config"] = no_config
    bad_config = inputs / "bad_config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    f["bad_config"] = bad_config
    f["gguf_empty"] = d / "empty.gguf"
    f["gguf_empty"].write_bytes(b"")
    f["gguf_garbage"] = d / "garbage.gguf"
    f["gguf_garbage"].write_bytes(b"GGUF" + bytes(60))
    f["arch_bad"] = d / "arch.json"
    f["arch_bad"].write_text("{broken")
    f["few"] = d / "few.txt"
    f["few"].write_text("one prompt\ntwo prompts\n")
    f["fifo"] = d / "fifo.txt"
    os.mkfifo(f["fifo"])  # reading it would block forever
    f["link_to_model"] = root / "link_to_model"
    f["link_to_model"].symlink_to(model, target_is_directory=True)
    bogus_arch = inputs / "bogus_arch"
    bogus_arch.mkdir()
    (bogus_arch / "config.json").write_text('{"model_type": "no-such-family", "hidden_size": 8}')
    f["bogus_arch"] = bogus_arch
    f["existing_file"] = outs / "existing.json"
    f["existing_file"].write_text("{}")
    f["existing_dir"] = outs / "existing_dir"
    f["existing_dir"].mkdir()
    (f["existing_dir"] / "x.txt").write_text("x")
    return ws


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The hostile-input workspace (built once per module, a few seconds)."""
    return build_workspace(tmp_path_factory.mktemp("hardening"))


class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past :data:`CASE_TIMEOUT_S`."""


@dataclass
class Outcome:
    """How one bad-input case ended."""

    name: str
    kind: str  # clear | traceback | internal | wrong_result | hang | data_loss | not_one_line
    exit_code: int | None
    stderr: str


def run_case(ws: Workspace, name: str, argv: list[str], before: Callable[[], object] | None = None) -> Outcome:
    """Run ``safetyscope *argv`` in-process and classify the result against the bad-input contract."""
    runner = CliRunner()
    snapshot = tree_hash(ws.inputs)

    fired = {"alarm": False}

    def on_alarm(_sig: int, _frame: object) -> None:
        fired["alarm"] = True
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
    hung = False
    try:
        context = before() if before is not None else None
        try:
            result = runner.invoke(app, argv, catch_exceptions=True)
        finally:
            if context is not None:
                context.__exit__(None, None, None)  # type: ignore[attr-defined]
    except CaseTimeout:
        hung = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if hung or fired["alarm"]:
        return Outcome(name, "hang", None, "")
    stderr = result.stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if tree_hash(ws.inputs) != snapshot:
        kind = "data_loss"
    elif list(ws.root.rglob("*.tmp")) or list(ws.root.rglob(".*.tmp-*")):
        kind = "data_loss"  # debris counts with data loss: a failed run must leave nothing behind
    elif "Traceback" in result.output or "Traceback" in stderr or (
            result.exception is not None and not isinstance(result.exception, SystemExit)):
        kind = "traceback"
    elif result.exit_code == 0:
        kind = "wrong_result"
    elif result.exit_code == 1 and "internal error" in stderr:
        kind = "internal"
    elif result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        kind = "clear"
    else:
        kind = "not_one_line"
    return Outcome(name, kind, result.exit_code, stderr)


@pytest.fixture(scope="session")
def case_runner() -> Callable[..., Outcome]:
    """:func:`run_case`, for the test modules."""
    return run_case


def summarise(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts per kind (the figures of the issue's closing note)."""
    counts = {"cases": len(outcomes), "clear": 0, "traceback": 0, "internal": 0, "wrong_result": 0, "hang": 0,
              "data_loss": 0, "not_one_line": 0}
    for o in outcomes:
        counts[o.kind] += 1
    return counts


def record(counts: dict[str, int], label: str) -> None:
    """Print the counts as one JSON line (visible with ``pytest -s`` and in failure reports)."""
    print(json.dumps({"suite": label, **counts}))
