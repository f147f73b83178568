"""The catalogue of bad inputs: every CLI command against files, options and paths a hostile but
realistic user would pass. Each case must end in a clear error (exit 2, one ``error:`` line on
stderr, no traceback) and leave every input untouched."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Workspace = Any  # tests/hardening/conftest.py: the ``ws`` fixture


@dataclass(frozen=True)
class Case:
    """One bad input: a name and the command line (built from the workspace)."""

    name: str
    argv: list[str]
    before: Callable[[], object] | None = None


def _model_cases(ws: Workspace) -> list[Case]:
    m = str(ws.model)
    return [
        Case("info: missing dir", ["info", str(ws.root / "nope")]),
        Case("info: dir without config.json", ["info", ws["no_config"]]),
        Case("info: weights of another model (random init)", ["info", ws["broken_model"]]),
        Case("info: pickled weights", ["info", ws["pickled_model"]]),
        Case("info: config.json not JSON", ["info", ws["bad_config"]]),
        Case("info: a plain file", ["info", ws["harmful"]]),
        Case("info: empty gguf", ["info", ws["gguf_empty"]]),
        Case("info: garbage gguf", ["info", ws["gguf_garbage"]]),
        Case("info: missing gguf", ["info", str(ws.root / "missing.gguf")]),
        Case("info: organism not built", ["info", "organism:small:7"]),
        Case("info: organism seed not a number", ["info", "organism:tiny:abc"]),
        Case("info: relative path that does not exist", ["info", "./no/such/model"]),
        Case("info: rich markup in path", ["info", str(ws.root / "[red]x[/red]")]),
        Case("info: arch map missing", ["info", m, "--arch-map", str(ws.root / "none.json")]),
        Case("info: arch map not JSON", ["info", m, "--arch-map", ws["arch_bad"]]),
        Case("info: unknown option", ["info", m, "--bogus"]),
        Case("unknown command", ["frobnicate"]),
        Case("info: unknown model_type", ["info", ws["bogus_arch"]]),
        Case("models pull: unknown model", ["models", "pull", "no-such-model"]),
        Case("organism build: unknown size", ["organism", "build", "--size", "huge", "--out", str(ws.outs / "o")]),
        Case("organism build: --out is a foreign folder (--force)",
             ["organism", "build", "--out", ws["precious"], "--force"]),
        Case("organism build: --out is the model (--force)", ["organism", "build", "--out", m, "--force"]),
    ]


def _collect_cases(ws: Workspace) -> list[Case]:
    m = str(ws.model)
    out = str(ws.outs / "acts.safetensors")

    def collect(*extra: str, prompts: str = "harmful", to: str = out) -> list[str]:
        return ["activations", "collect", m, "--prompts", ws[prompts] if prompts in ws.files else prompts,
                "--out", to, *extra]

    cases = [Case(f"collect: --batch-size {v}", collect("--batch-size", v)) for v in ("0", "-1", "abc", "1.5")]
    for name in ("latin1", "binary", "empty", "null_field", "number_field", "list_field", "bad_json",
                 "ragged_long", "ragged_short", "corrupt_parquet", "docx"):
        cases.append(Case(f"collect: prompts {name}", collect(prompts=name)))
    cases += [
        Case("collect: prompts missing", collect(prompts=str(ws.root / "none.txt"))),
        Case("collect: prompts is a folder", collect(prompts=str(ws.inputs / "data"))),
        Case("collect: --column missing", collect("--column", "nope", prompts="null_field")),
        Case("collect: prompts is a FIFO (would block)", collect(prompts="fifo")),
        Case("collect: --out is a symlink to the model (--force)", collect("--force", to=ws["link_to_model"])),
        Case("collect: --out inside a symlink to the model",
             collect(to=str(ws.files["link_to_model"] / "acts.safetensors"))),
    ]
    for layers in ("abc", "5-2", "99", "1,,2", "", "1.5", "-99"):
        cases.append(Case(f"collect: --layers {layers!r}", collect("--layers", layers)))
    for positions in ("eoi:abc", "eoi:99", "bogus", "substring:", "last:3"):
        cases.append(Case(f"collect: --positions {positions}", collect("--positions", positions)))
    cases += [
        Case("collect: --point bogus", collect("--point", "bogus")),
        Case("collect: --reduce bogus", collect("--reduce", "bogus")),
        Case("collect: --dtype bogus", collect("--dtype", "float7")),
        Case("collect: --out is the model dir (--force)", collect("--force", to=m)),
        Case("collect: --out is the model weights (--force)", collect("--force", to=str(ws.model / "model.safetensors"))),
        Case("collect: --out new file inside the model dir", collect(to=str(ws.model / "acts.safetensors"))),
        Case("collect: --out is the prompts file (--force)", collect("--force", to=ws["harmful"])),
        Case("collect: --out is an existing folder", collect(to=str(ws.files["existing_dir"]))),
        Case("collect: --out exists (no --force)", collect(to=ws["existing_file"])),
        Case("collect: --out under a file", collect(to=str(ws.files["existing_file"] / "x.safetensors"))),
        Case("collect: model weights of another model", ["activations", "collect", ws["broken_model"], "--prompts",
                                                          ws["harmful"], "--out", out]),
    ]
    return cases


def _geometry_cases(ws: Workspace) -> list[Case]:
    def geo(a: str, b: str = "acts_b", *extra: str) -> list[str]:
        return ["geometry", "--harmful", ws[a] if a in ws.files else a, "--harmless", ws[b] if b in ws.files else b,
                *extra]

    cases = [Case(f"geometry: harmful {name}", geo(name)) for name in (
        "acts_nan", "acts_wide", "acts_1row", "acts_1d", "acts_two", "acts_truncated", "acts_pickle",
        "acts_object_npy", "acts_txt", "acts_ints_str", "harmful")]
    cases += [
        Case("geometry: harmful missing", geo(str(ws.root / "none.safetensors"))),
        Case("geometry: --key missing", geo("acts_a", "acts_b", "--key", "nope")),
        Case("geometry: --top-k 0", geo("acts_a", "acts_b", "--top-k", "0")),
        Case("geometry: --methods bogus", geo("acts_a", "acts_b", "--methods", "bogus")),
        Case("geometry: --out exists (no --force)", geo("acts_a", "acts_b", "--out", ws["existing_file"])),
        Case("geometry: --out is the harmful file (--force)", geo("acts_a", "acts_b", "--out", ws["acts_a"], "--force")),
        Case("geometry: --out is the model weights (--force)",
             geo("acts_a", "acts_b", "--out", str(ws.model / "model.safetensors"), "--force")),
        Case("geometry: --out is a folder", geo("acts_a", "acts_b", "--out", str(ws.files["existing_dir"]))),
        Case("geometry: --out under a file", geo("acts_a", "acts_b", "--out", str(ws.files["existing_file"] / "r.json"))),
    ]
    return cases


def _direction_cases(ws: Workspace) -> list[Case]:
    m = str(ws.model)
    sets = ["--harmful", ws["harmful"], "--harmless", ws["harmless"]]
    out = str(ws.outs / "d.safetensors")
    cases = [Case(f"select: --max-kl {v}", ["directions", "select", m, "--out", out, "--max-kl", v, *sets])
             for v in ("nan", "inf", "-1", "0")]
    cases += [
        Case("select: --out is the model (--force)", ["directions", "select", m, "--out", m, "--force", *sets]),
        Case("select: --out inside the model", ["directions", "select", m, "--out", str(ws.model / "d.safetensors"), *sets]),
        Case("select: harmful has a null field", ["directions", "select", m, "--out", out, "--harmful",
                                                  ws["null_field"], "--harmless", ws["harmless"]]),
        Case("select: harmful missing", ["directions", "select", m, "--out", out, "--harmful", str(ws.root / "x.txt"),
                                         "--harmless", ws["harmless"]]),
        Case("select: too few prompts", ["directions", "select", m, "--out", out, "--harmful", ws["few"],
                                         "--harmless", ws["few"]]),
        Case("select: harmless missing", ["directions", "select", m, "--out", out, "--harmful", ws["harmful"]]),
    ]
    bad_dirs = ("dir_nan", "dir_inf", "dir_zero", "dir_nan_gap", "dir_inf_norm", "dir_wrong_d", "dir_multi",
                "dir_garbage", "dir_plain", "harmful")
    common = ["--n", "2", "--max-new-tokens", "2", *sets]
    for cmd in ("ablate", "steer"):
        for name in bad_dirs:
            cases.append(Case(f"{cmd}: direction {name}", [cmd, m, "--direction", ws[name], *common]))
        cases.append(Case(f"{cmd}: direction missing", [cmd, m, "--direction", str(ws.root / "d.safetensors"), *common]))
        cases.append(Case(f"{cmd}: direction is a folder", [cmd, m, "--direction", str(ws.inputs / "data"), *common]))
        cases.append(Case(f"{cmd}: --layer not in the file", [cmd, m, "--direction", ws["dir_multi"], "--layer", "2",
                                                             *common]))
        for opt, v in (("--n", "0"), ("--n", "-3"), ("--max-new-tokens", "0"), ("--judge", "bogus")):
            cases.append(Case(f"{cmd}: {opt} {v}", [cmd, m, "--direction", ws["direction"], *common, opt, v]))
    for v in ("nan", "inf", "-inf", "abc"):
        cases.append(Case(f"steer: --scale {v}", ["steer", m, "--direction", ws["direction"], "--scale", v, *common]))
    cases += [
        Case("steer: --layers abc", ["steer", m, "--direction", ws["direction"], "--layers", "abc", *common]),
        Case("steer: --layers 99", ["steer", m, "--direction", ws["direction"], "--layers", "99", *common]),
        Case("steer: --positions bogus", ["steer", m, "--direction", ws["direction"], "--positions", "bogus", *common]),
        Case("chat: --scale nan", ["chat", m, "--steer", ws["direction"], "--scale", "nan"]),
        Case("chat: --max-new-tokens 0", ["chat", m, "--max-new-tokens", "0"]),
        Case("chat: --steer NaN direction", ["chat", m, "--steer", ws["dir_nan"]]),
        Case("chat: --ablate zero direction", ["chat", m, "--ablate", ws["dir_zero"]]),
    ]
    edit_out = str(ws.outs / "edited")
    cases += [
        Case("edit: --out is the model (--force)", ["edit", m, "--direction", ws["direction"], "--out", m, "--force"]),
        Case("edit: --out inside the model (--force)",
             ["edit", m, "--direction", ws["direction"], "--out", str(ws.model / "sub"), "--force"]),
        Case("edit: --out contains the model (--force)",
             ["edit", m, "--direction", ws["direction"], "--out", str(ws.inputs), "--force"]),
        Case("edit: --out is a foreign folder (--force)",
             ["edit", m, "--direction", ws["direction"], "--out", ws["precious"], "--force"]),
        Case("edit: --out is a file", ["edit", m, "--direction", ws["direction"], "--out", ws["existing_file"], "--force"]),
        Case("edit: --method bogus", ["edit", m, "--direction", ws["direction"], "--out", edit_out, "--method", "bogus",
                                      "--harmless", ws["harmless"]]),
        Case("edit: --harmless latin1", ["edit", m, "--direction", ws["direction"], "--out", edit_out, "--method",
                                         "projected", "--harmless", ws["latin1"]]),
        Case("edit: NaN direction", ["edit", m, "--direction", ws["dir_nan"], "--out", edit_out]),
        Case("edit: zero direction", ["edit", m, "--direction", ws["dir_zero"], "--out", edit_out]),
        Case("edit: wrong-width direction", ["edit", m, "--direction", ws["dir_wrong_d"], "--out", edit_out]),
    ]
    return cases


def _audit_cases(ws: Workspace) -> list[Case]:
    from safetyscope.outputs import output_lock

    m = str(ws.model)
    sets = ["--harmful", ws["harmful"], "--harmless", ws["harmless"]]
    out = str(ws.outs / "audit")
    cases = [
        Case("audit: --out is the model (--force)", ["audit", m, "--out", m, "--force", *sets]),
        Case("audit: --out inside the model (--force)", ["audit", m, "--out", str(ws.model / "a"), "--force", *sets]),
        Case("audit: --out contains the model (--force)", ["audit", m, "--out", str(ws.inputs), "--force", *sets]),
        Case("audit: --out is a foreign folder (--force)", ["audit", m, "--out", ws["precious"], "--force", *sets]),
        Case("audit: --out is a file", ["audit", m, "--out", ws["existing_file"], *sets]),
        Case("audit: --out is a prompts file (--force)", ["audit", m, "--out", ws["harmful"], "--force", *sets]),
        Case("audit: empty --trigger", ["audit", m, "--out", out, "--trigger", "", *sets]),
        Case("audit: blank --trigger", ["audit", m, "--out", out, "--trigger", "   ", *sets]),
        Case("audit: trigger equals the control tag", ["audit", m, "--out", out, "--trigger", "|dev|", *sets]),
        Case("audit: --config is a folder", ["audit", m, "--out", out, "--config", str(ws.inputs / "data"), *sets]),
        Case("audit: --out is a symlink to the model (--force)",
             ["audit", m, "--out", ws["link_to_model"], "--force", *sets]),
        Case("audit: --config missing", ["audit", m, "--out", out, "--config", str(ws.root / "c.toml"), *sets]),
        Case("audit: --harmful missing", ["audit", m, "--out", out, "--harmful", str(ws.root / "h.txt"),
                                          "--harmless", ws["harmless"]]),
        Case("audit: --harmless empty", ["audit", m, "--out", out, "--harmful", ws["harmful"], "--harmless", ws["empty"]]),
        Case("audit: --harmful has a number field", ["audit", m, "--out", out, "--harmful", ws["number_field"],
                                                    "--harmless", ws["harmless"]]),
        Case("audit: second concurrent audit on the same --out", ["audit", m, "--out", out, *sets],
             before=lambda: _held(output_lock, out)),
    ]
    for name in ("cfg_types", "cfg_methods", "cfg_unknown", "cfg_layers", "cfg_control", "cfg_toml", "cfg_bool",
                 "cfg_float", "cfg_table", "cfg_small", "cfg_latin1"):
        cases.append(Case(f"audit: config {name}", ["audit", m, "--out", out, "--config", ws[name], *sets]))
    cases.append(Case("audit: config unknown method under --quick",
                      ["audit", m, "--out", out, "--quick", "--config", ws["cfg_methods"], *sets]))
    return cases


def _held(lock: Callable[..., object], out: str) -> object:
    ctx = lock(out, "audit")
    ctx.__enter__()  # type: ignore[attr-defined]
    return ctx


def _patch_cases(ws: Workspace) -> list[Case]:
    m = str(ws.model)
    base = ["patch", m, "--clean", ws["harmful"], "--corruption", "noise"]
    return [
        Case("patch: --out is the model (--force)", [*base, "--out", m, "--force"]),
        Case("patch: --out inside the model", [*base, "--out", str(ws.model / "p")]),
        Case("patch: --out is a foreign folder (--force)", [*base, "--out", ws["precious"], "--force"]),
        Case("patch: --out is a file", [*base, "--out", ws["existing_file"]]),
        Case("patch: --noise-scale nan", [*base, "--noise-scale", "nan"]),
        Case("patch: --token-budget 0", [*base, "--token-budget", "0"]),
        Case("patch: clean prompts latin1", ["patch", m, "--clean", ws["latin1"], "--corruption", "noise"]),
        Case("patch: --layers abc", [*base, "--layers", "abc"]),
    ]


def _judge_cases(ws: Workspace) -> list[Case]:
    return [
        Case("judge: completions missing", ["judge", "--completions", str(ws.root / "c.jsonl")]),
        Case("judge: completions not JSON", ["judge", "--completions", ws["completions_bad"]]),
        Case("judge: completion is a number", ["judge", "--completions", ws["completions_null"]]),
        Case("judge: completions latin1", ["judge", "--completions", ws["latin1"]]),
        Case("judge: completions binary", ["judge", "--completions", ws["binary"]]),
        Case("judge: unknown judge", ["judge", "--completions", ws["completions_null"], "--judge", "bogus"]),
    ]


def catalogue(ws: Workspace) -> list[Case]:
    """Every bad-input case, in a fixed order."""
    return [*_model_cases(ws), *_collect_cases(ws), *_geometry_cases(ws), *_direction_cases(ws),
            *_audit_cases(ws), *_patch_cases(ws), *_judge_cases(ws)]


KINDS = ("clear", "traceback", "internal", "wrong_result", "hang", "data_loss", "not_one_line")
#: Every outcome of this module (catalogue and generated cases), summarised at teardown.
OUTCOMES: list[Any] = []


def counts(outcomes: list[Any]) -> dict[str, int]:
    """The figures of the issue's closing note."""
    return {"cases": len(outcomes), **{k: sum(o.kind == k for o in outcomes) for k in KINDS}}


@pytest.fixture(scope="module", autouse=True)
def totals():
    """Print the module's totals as one JSON line (``pytest -s tests/hardening`` shows it)."""
    yield
    if OUTCOMES:
        print("\n" + json.dumps({"suite": "hardening bad inputs (catalogue + generated)", **counts(OUTCOMES)}))


def _failures(outcomes: list[Any]) -> list[str]:
    return [f"{o.name}: {o.kind} (exit {o.exit_code}) {o.stderr.strip()[:300]!r}" for o in outcomes
            if o.kind != "clear"]


def test_catalogue_of_bad_inputs(ws, case_runner):
    """Every case: exit 2, one ``error:`` line on stderr, no traceback, inputs byte-identical."""
    cases = catalogue(ws)
    assert len({c.name for c in cases}) == len(cases)
    outcomes = [case_runner(ws, c.name, c.argv, c.before) for c in cases]
    OUTCOMES.extend(outcomes)
    print(json.dumps({"suite": "catalogue", **counts(outcomes)}))
    failures = _failures(outcomes)
    assert not failures, f"{counts(outcomes)}\n" + "\n".join(failures)
    assert len(cases) >= 100


def test_valid_inputs_succeed_under_the_same_harness(ws, case_runner):
    """Control: the harness tells success from failure (exit 0), and valid runs leave inputs intact."""
    m = str(ws.model)
    runs = [
        ["info", m],
        ["geometry", "--harmful", ws["acts_a"], "--harmless", ws["acts_b"], "--out", str(ws.outs / "g.json")],
        ["activations", "collect", m, "--prompts", ws["harmful"], "--out", str(ws.outs / "a.safetensors"),
         "--layers", "1", "--batch-size", "4", "--no-cache"],
    ]
    for argv in runs:
        o = case_runner(ws, " ".join(argv[:2]), argv)
        assert o.kind == "wrong_result" and o.exit_code == 0, o  # exit 0 with inputs untouched
    assert (ws.outs / "g.json").is_file() and (ws.outs / "a.safetensors").is_file()


# --- generated cases: numeric options and selector syntax (hypothesis) -----------------------------

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
not_positive_int = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["1.5", "abc", "", "1e3", "0x10", "nan"]))
not_finite = st.sampled_from(["nan", "NaN", "inf", "-inf", "+inf", "Infinity", "1e999", "-1e999", "abc", ""])


def _check(ws, case_runner, name: str, argv: list[str]) -> None:
    o = case_runner(ws, name, argv)
    OUTCOMES.append(o)
    assert o.kind == "clear", _failures([o])


@SETTINGS
@given(option=st.sampled_from(["--batch-size"]), value=not_positive_int)
def test_generated_collect_sizes(ws, case_runner, option, value):
    _check(ws, case_runner, f"collect {option} {value!r}", ["activations", "collect", str(ws.model), "--prompts",
           ws["harmful"], "--out", str(ws.outs / "x.safetensors"), option, value])


@SETTINGS
@given(option=st.sampled_from(["--n", "--max-new-tokens"]), value=not_positive_int, cmd=st.sampled_from(["ablate", "steer"]))
def test_generated_generation_sizes(ws, case_runner, option, value, cmd):
    _check(ws, case_runner, f"{cmd} {option} {value!r}", [cmd, str(ws.model), "--direction", ws["direction"],
           "--harmful", ws["harmful"], "--harmless", ws["harmless"], option, value])


@SETTINGS
@given(value=st.one_of(not_finite, st.floats(max_value=0.0, allow_nan=False).map(repr)))
def test_generated_max_kl(ws, case_runner, value):
    _check(ws, case_runner, f"select --max-kl {value!r}", ["directions", "select", str(ws.model), "--out",
           str(ws.outs / "d.safetensors"), "--max-kl", value, "--harmful", ws["harmful"], "--harmless", ws["harmless"]])


@SETTINGS
@given(value=not_finite, cmd=st.sampled_from(["steer", "chat"]))
def test_generated_scales(ws, case_runner, value, cmd):
    extra = ["--direction", ws["direction"]] if cmd == "steer" else ["--steer", ws["direction"]]
    _check(ws, case_runner, f"{cmd} --scale {value!r}", [cmd, str(ws.model), *extra, f"--scale={value}"])


def _bad_layers(text: str) -> bool:
    from safetyscope.activations import parse_layers
    from safetyscope.errors import SafetyscopeError

    try:
        parse_layers(text, 3)
    except SafetyscopeError:
        return True
    return False


@SETTINGS
@given(text=st.text(alphabet="0123456789-,. ax", max_size=8).filter(_bad_layers))
def test_generated_layer_selectors(ws, case_runner, text):
    _check(ws, case_runner, f"collect --layers {text!r}", ["activations", "collect", str(ws.model), "--prompts",
           ws["harmful"], "--out", str(ws.outs / "x.safetensors"), f"--layers={text}"])


@SETTINGS
@given(text=st.one_of(st.integers(min_value=16).map(lambda i: f"eoi:{i}"),
                      st.integers(max_value=-17).map(lambda i: f"eoi:{i}"),
                      st.text(alphabet="eoilastubring:-0123", min_size=1, max_size=8).filter(
                          lambda t: t not in ("last", "all", "eoi") and not t.startswith(("eoi:", "substring:"))
                          and not t.startswith("trigger:"))))
def test_generated_position_selectors(ws, case_runner, text):
    _check(ws, case_runner, f"collect --positions {text!r}", ["activations", "collect", str(ws.model), "--prompts",
           ws["harmful"], "--out", str(ws.outs / "x.safetensors"), f"--positions={text}", "--no-cache"])
