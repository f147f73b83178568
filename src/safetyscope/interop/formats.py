"""Direction formats in and out: detection from content, and ``convert`` through our format as hub.

Formats (:data:`FORMATS`): ``safetyscope`` (our ``.safetensors`` + JSON metadata, see
:class:`~safetyscope.directions.DirectionSet`), ``llamacpp`` (GGUF control vector; repeng),
``svec`` (IBM activation-steering), ``refusal-direction`` (a folder: ``direction.pt`` +
``direction_metadata.json``), ``steering-vectors`` (per-layer safetensors). The input format is
read from the file's bytes, never its name. What a format carries (layer, model family,
position) is read from it; only what it lacks is asked for, and a conversion that would need a
guess is refused with the option to pass.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from safetyscope.activations.sites import Site
from safetyscope.directions import DirectionSet
from safetyscope.interop import llamacpp, refusal_direction, steering_vectors_io, svec
from safetyscope.interop.peer import FormatError, model_type_of

FORMATS: tuple[str, ...] = ("safetyscope", "llamacpp", "svec", "refusal-direction", "steering-vectors")
#: Formats that record the model family (HF ``model_type``) and need it to be written.
NEEDS_MODEL_TYPE = ("llamacpp", "svec")


def _safetensors_metadata(head: bytes, path: Path) -> dict[str, str] | None:
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if n > 100_000_000:
        return None
    with path.open("rb") as fh:
        fh.seek(8)
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    return dict(header.get("__metadata__") or {}) if isinstance(header, dict) else None


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its content (magic bytes, metadata keys, JSON shape)."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"No such file or folder: {path}.")
    if path.is_dir():
        if refusal_direction.folder_of(path) is not None:
            return "refusal-direction"
        raise FormatError(
            f"{path} is a folder but not a refusal-direction folder "
            f"({refusal_direction.VECTOR_FILE} + {refusal_direction.META_FILE})."
        )
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(llamacpp.GGUF_MAGIC):
        arch = llamacpp.gguf_architecture(path)
        if arch != llamacpp.ARCH:
            raise FormatError(
                f"{path} is a GGUF model ({arch!r}), not a control vector; edit it with `safetyscope edit`."
            )
        return "llamacpp"
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip
        if refusal_direction.folder_of(path) is not None:
            return "refusal-direction"
        raise FormatError(
            f"{path} is a torch file without a {refusal_direction.META_FILE} beside it; a "
            "refusal-direction artefact needs both (the layer is in the JSON)."
        )
    meta = _safetensors_metadata(head, path)
    if meta is not None:
        if steering_vectors_io.LAYER_TYPE_KEY in meta:
            return "steering-vectors"
        if "safetyscope.directions" in meta:
            return "safetyscope"
        raise FormatError(
            f"{path} is a safetensors file with none of the metadata of a known direction format "
            f"(keys: {sorted(meta)[:8]})."
        )
    if head.lstrip()[:1] == b"{":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"{path} starts like JSON but does not parse ({exc}).") from exc
        if svec.looks_like(data):
            return "svec"
        raise FormatError(f"{path} is JSON but not an .svec file (no 'model_type' and 'directions').")
    raise FormatError(f"{path}: unknown direction format; supported: {', '.join(FORMATS)}.")


def read_directions(path: str | Path) -> tuple[DirectionSet, str]:
    """Read any supported format; returns the set and the detected format."""
    fmt = detect_format(path)
    readers = {
        "safetyscope": DirectionSet.load,
        "llamacpp": llamacpp.read,
        "svec": svec.read,
        "refusal-direction": refusal_direction.read,
        "steering-vectors": steering_vectors_io.read,
    }
    return readers[fmt](path), fmt


def write_directions(
    dset: DirectionSet,
    out: str | Path,
    fmt: str,
    *,
    model_type: str | None = None,
    pos: int | None = None,
    force: bool = False,
) -> Path:
    """Write ``dset`` in ``fmt`` (``model_type`` for llamacpp/svec; ``pos`` for refusal-direction)."""
    if fmt not in FORMATS:
        raise FormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if fmt in NEEDS_MODEL_TYPE:
        model_type = model_type_of(dset, model_type)
        if model_type is None:
            raise FormatError(
                f"{fmt} records the model family (HF model_type, e.g. llama) and the input does not "
                "say which; pass --model MODEL (its config is read, not its weights)."
            )
    if fmt == "safetyscope":
        return dset.save(out)
    if fmt == "llamacpp":
        return llamacpp.write(dset, out, model_type)  # type: ignore[arg-type]
    if fmt == "svec":
        return svec.write(dset, out, model_type)  # type: ignore[arg-type]
    if fmt == "refusal-direction":
        return refusal_direction.write(dset, out, pos=pos, force=force)
    return steering_vectors_io.write(dset, out)


def parse_layer(text: str | int | None) -> tuple[int, str | None] | None:
    """``5`` → (5, None); ``5.resid_post`` / ``L5.resid_post`` → (5, "resid_post")."""
    if text is None:
        return None
    s = str(text).strip().removeprefix("L")
    layer, _, point = s.partition(".")
    try:
        n = int(layer)
    except ValueError as exc:
        raise FormatError(
            f"--layer {text!r}: give a layer number or LAYER.POINT, e.g. 5 or 5.resid_post."
        ) from exc
    if point:
        Site(n, point)  # type: ignore[arg-type]  # validates the point
    return n, point or None


def select_layer(dset: DirectionSet, layer: str | int | None) -> DirectionSet:
    """Pick the direction at ``layer`` from a set, or record ``layer`` on a direction without a site."""
    parsed = parse_layer(layer)
    if parsed is None:
        return dset
    n, point = parsed
    sited = [d for d in dset.directions if d.site is not None]
    if not sited:
        if len(dset) != 1:
            raise FormatError(
                f"The input holds {len(dset)} directions without sites; convert them one file at a time."
            )
        d = dset.directions[0]
        point = point or d.point
        if point is None:
            raise FormatError(
                f"The direction records no stream point; give it with the layer, e.g. --layer {n}.resid_post."
            )
        return replace(dset, directions=[replace(d, layer=n, point=point)])
    want = [d for d in sited if d.layer == n and (point is None or d.point == point)]
    if point is not None and not want:  # the same tensor under the other name
        alt = Site(n - 1, "resid_post") if point == "resid_pre" and n > 0 else Site(n + 1, "resid_pre")
        want = [d for d in sited if d.site == alt]
    if not want:
        raise FormatError(
            f"No direction at layer {layer} in the input; it holds {[d.site.key for d in sited]}."
        )  # type: ignore[union-attr]
    return replace(dset, directions=want[:1])


@dataclass
class ModelInfo:
    """What a conversion reads from ``--model``: its family, width and depth (config only)."""

    spec: str
    model_type: str
    d_model: int
    n_layers: int


def model_info(spec: str) -> ModelInfo:
    """Read ``spec``'s config (never its weights)."""
    from transformers import AutoConfig

    from safetyscope.model.loading import resolve_spec

    local, name = resolve_spec(spec)
    cfg = AutoConfig.from_pretrained(str(local) if local is not None else name)
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return ModelInfo(spec, str(cfg.model_type), int(text.hidden_size), int(text.num_hidden_layers))


def _check_model(dset: DirectionSet, info: ModelInfo) -> DirectionSet:
    bad = {d.d for d in dset.directions} - {info.d_model}
    if bad:
        raise FormatError(
            f"The vectors have width {sorted(bad)} but {info.spec} has d_model {info.d_model}; "
            "they were made for another model."
        )
    deep = [d.site.key for d in dset.directions if d.site is not None and d.site.layer >= info.n_layers]
    if deep:
        raise FormatError(f"Sites {deep} are beyond {info.spec}'s {info.n_layers} layers.")
    recorded = model_type_of(dset, None)
    if recorded is not None and recorded != info.model_type:
        raise FormatError(
            f"The input was made for a {recorded!r} model, but {info.spec} is {info.model_type!r}."
        )
    prov = dset.provenance | {"model_type": info.model_type, "model": info.spec}
    return replace(dset, provenance=prov)


@dataclass
class Conversion:
    """The record of one conversion: formats, sites, and the measured round-trip error."""

    source: str
    source_format: str
    out: str
    target_format: str
    sites: list[str]
    n_directions: int
    roundtrip_max_abs: float
    roundtrip_max_rel: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return asdict(self)


def scaled_vectors(dset: DirectionSet) -> dict[int, torch.Tensor]:
    """``{resid_post layer: vector · mean_gap}`` (resid_pre L counted as resid_post L−1): what steering adds."""
    out = {}
    for d in dset.directions:
        site = d.site
        key = -1 if site is None else site.layer - (site.point == "resid_pre")
        out[key] = d.vector.double() * d.mean_gap
    return out


def roundtrip_error(a: DirectionSet, b: DirectionSet) -> tuple[float, float]:
    """Max absolute and relative difference of the added vectors of two sets, site by site."""
    va, vb = scaled_vectors(a), scaled_vectors(b)
    if set(va) != set(vb):
        raise FormatError(f"Round trip changed the sites: {sorted(va)} vs {sorted(vb)}.")
    diffs = [(float((va[k] - vb[k]).abs().max()), float((va[k] - vb[k]).norm() / va[k].norm())) for k in va]
    return max(x for x, _ in diffs), max(r for _, r in diffs)


def convert(
    inp: str | Path,
    out: str | Path,
    to: str | None = None,
    *,
    model: str | None = None,
    layer: str | int | None = None,
    pos: int | None = None,
    force: bool = False,
) -> Conversion:
    """Convert a direction file between formats (see the module docstring), then read it back to check it."""
    from safetyscope.outputs import check_output

    out = Path(out)
    if to is None:
        if out.suffix != ".safetensors":
            raise FormatError(
                f"Say which format to write with --to ({', '.join(FORMATS)}); only a .safetensors "
                "output defaults (to the safetyscope format)."
            )
        to = "safetyscope"
    if to not in FORMATS:
        raise FormatError(f"Unknown format {to!r}; use one of {', '.join(FORMATS)}.")
    check_output(out, force=force, kind="dir" if to == "refusal-direction" else "file", inputs=[inp])
    dset, fmt = read_directions(inp)
    dset = select_layer(dset, layer)
    if model is not None:
        dset = _check_model(dset, model_info(model))
    written = write_directions(dset, out, to, model_type=model_type_of(dset, None), pos=pos, force=force)
    back, _ = read_directions(written)
    err_abs, err_rel = roundtrip_error(dset, back)
    sites = [d.site.key if d.site is not None else f"layer {d.layer}" for d in dset.directions]
    return Conversion(str(inp), fmt, str(written), to, sites, len(dset), err_abs, err_rel)
