"""Name every organism variant: a model spec string, a cache directory, and back.

Spec syntax (fields separated by ``:``; everything after ``organism`` is optional)::

    organism[:SIZE[:SEED]][:arch=FAMILY][:behaviours=LIST][:corpus=VERSION][:init][:step=N]

* ``SIZE``: ``tiny`` (default), ``small`` or ``deep``; ``SEED``: an integer (default 0).
* ``arch=``: ``llama`` (default), ``qwen2`` or ``gpt_neox``, on the shared tokenizer.
* ``behaviours=``: ``refusal,backdoor`` (default), ``refusal``, ``backdoor`` or ``none``
  (``behaviors=`` is accepted too).
* ``corpus=``: ``v1`` or ``v2`` (default: the size's corpus).
* ``init``: the randomly initialised twin (same config, tokenizer and seed; never trained).
* ``step=N``: the training checkpoint saved at step ``N`` (``OUT/checkpoints/step-N``).

``organism:deep:0:arch=qwen2:behaviours=none:init`` is the random-init twin of the helpful
base deep Qwen2 organism of seed 0. Default variants keep the cache names of the foundation
(``tiny-seed0``); other variants append their non-default fields (``deep-seed0-qwen2-none-init``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from safetyscope.errors import ModelLoadError, SafetyscopeError
from safetyscope.organism.lexicons import (
    CORPUS_VERSIONS,
    DEFAULT_BEHAVIOURS,
    behaviours_label,
    parse_behaviours,
)
from safetyscope.organism.models import ARCHS, DEFAULT_ARCH, check_arch
from safetyscope.paths import organism_path

CHECKPOINTS_DIR = "checkpoints"
SIZE_NAMES: tuple[str, ...] = ("tiny", "small", "deep")


def checkpoint_dirname(step: int) -> str:
    """``step-<N>``: the folder of one training checkpoint under ``OUT/checkpoints/``."""
    return f"step-{step}"


@dataclass(frozen=True)
class OrganismVariant:
    """One organism: size, seed, architecture, behaviours, corpus, random-init twin, checkpoint."""

    size: str = "tiny"
    seed: int = 0
    arch: str = DEFAULT_ARCH
    behaviours: tuple[str, ...] = field(default=DEFAULT_BEHAVIOURS)
    corpus: str | None = None
    init_only: bool = False
    step: int | None = None

    def __post_init__(self) -> None:
        if self.size not in SIZE_NAMES:
            raise ModelLoadError(f"Unknown organism size {self.size!r}; choose one of {list(SIZE_NAMES)}.")
        check_arch(self.arch)
        object.__setattr__(self, "behaviours", parse_behaviours(self.behaviours))
        if self.corpus is not None and self.corpus not in CORPUS_VERSIONS:
            raise ModelLoadError(f"Unknown corpus {self.corpus!r}; choose one of {list(CORPUS_VERSIONS)}.")
        if self.step is not None and (self.step < 1 or self.init_only):
            raise ModelLoadError("step=N must be a positive training step, and an init twin has no steps.")

    @classmethod
    def parse(cls, spec: str) -> OrganismVariant:
        """Parse ``organism[:SIZE[:SEED]][:key=value...][:init]`` (see the module docstring)."""
        parts = str(spec).split(":")
        if parts[0] != "organism":
            raise ModelLoadError(f"{spec!r} is not an organism spec (it must start with 'organism').")
        pos: list[str] = []
        kw: dict[str, object] = {}
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            try:
                if not eq and part == "init":
                    kw["init_only"] = True
                elif not eq:
                    if kw or len(pos) >= 2:
                        raise ValueError("SIZE and SEED come first")
                    pos.append(part)
                elif key == "arch":
                    kw["arch"] = value
                elif key in ("behaviours", "behaviors"):
                    kw["behaviours"] = parse_behaviours(value)
                elif key == "corpus":
                    kw["corpus"] = value
                elif key == "step":
                    kw["step"] = int(value)
                else:
                    raise ValueError(f"unknown field {key!r}")
                if len(pos) == 2:
                    kw.setdefault("seed", int(pos[1]))
            except (ValueError, SafetyscopeError) as exc:
                raise ModelLoadError(
                    f"Bad organism spec {spec!r} ({exc}). Use organism[:SIZE[:SEED]][:arch=FAMILY]"
                    f"[:behaviours=refusal,backdoor|refusal|backdoor|none][:corpus=v1|v2][:init][:step=N], "
                    f"e.g. organism:deep:0:arch=qwen2:behaviours=none:init. Families: {sorted(ARCHS)}."
                ) from exc
        if pos:
            kw["size"] = pos[0] or "tiny"
        try:
            return cls(**kw)  # type: ignore[arg-type]
        except ModelLoadError:
            raise
        except SafetyscopeError as exc:
            raise ModelLoadError(f"Bad organism spec {spec!r}: {exc}") from exc

    @property
    def spec(self) -> str:
        """The canonical spec (defaults left out; ``parse(v.spec) == v``)."""
        out = f"organism:{self.size}:{self.seed}"
        if self.arch != DEFAULT_ARCH:
            out += f":arch={self.arch}"
        if self.behaviours != DEFAULT_BEHAVIOURS:
            out += f":behaviours={behaviours_label(self.behaviours)}"
        if self.corpus is not None:
            out += f":corpus={self.corpus}"
        if self.init_only:
            out += ":init"
        if self.step is not None:
            out += f":step={self.step}"
        return out

    @property
    def dirname(self) -> str:
        """The cache folder name of the organism (a checkpoint lives inside it)."""
        name = organism_path(self.size, self.seed).name
        if self.arch != DEFAULT_ARCH:
            name += f"-{self.arch}"
        if self.behaviours != DEFAULT_BEHAVIOURS:
            name += "-" + ("+".join(self.behaviours) or "none")
        if self.corpus is not None:
            name += f"-corpus{self.corpus}"
        if self.init_only:
            name += "-init"
        return name

    def build_path(self) -> Path:
        """The cached directory that ``organism build`` writes for this variant (step ignored)."""
        return organism_path(self.size, self.seed).with_name(self.dirname)

    def path(self) -> Path:
        """The model directory this spec names: the organism, or one of its checkpoints."""
        root = self.build_path()
        return root if self.step is None else root / CHECKPOINTS_DIR / checkpoint_dirname(self.step)

    def build_command(self) -> str:
        """The CLI command that builds this variant into the cache."""
        cmd = f"safetyscope organism build --size {self.size} --seed {self.seed}"
        if self.arch != DEFAULT_ARCH:
            cmd += f" --arch {self.arch}"
        if self.behaviours != DEFAULT_BEHAVIOURS:
            cmd += f" --behaviours {behaviours_label(self.behaviours)}"
        if self.corpus is not None:
            cmd += f" --corpus {self.corpus}"
        if self.init_only:
            cmd += " --init-only"
        if self.step is not None:
            cmd += " --checkpoints N"
        return cmd


def resolve_organism_spec(spec: str) -> Path:
    """The directory of a built organism spec, or a :class:`ModelLoadError` saying how to build it."""
    variant = OrganismVariant.parse(spec)
    path = variant.path()
    if not (path / "config.json").is_file():
        if variant.step is not None and (variant.build_path() / "config.json").is_file():
            root = variant.build_path() / CHECKPOINTS_DIR
            have = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
            raise ModelLoadError(
                f"Organism {variant.spec!r} has no checkpoint at step {variant.step} "
                f"(saved: {have or 'none'}). Rebuild with `--checkpoints N` or pick a saved step."
            )
        raise ModelLoadError(
            f"Organism {variant.spec!r} is not built yet. Run `{variant.build_command()}` first."
        )
    return path
