"""Load any Hugging Face causal LM (local directory, hub id, GGUF file, pulled or organism name).

``load_model(spec)`` is the single entry point. It resolves the spec to a local HF directory
(converting a GGUF file once into a cached safetensors directory), loads model and tokenizer
with a sensible dtype/device, binds the architecture map, and returns a :class:`LoadedModel`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from safetyscope.errors import ModelLoadError
from safetyscope.model.architectures import ArchitectureMap, ResolvedArchitecture, resolve_architecture
from safetyscope.model.chat import ChatFormatter
from safetyscope.model.integrity import check_loading_info, load_failure
from safetyscope.model.precision import (
    count_params_config,
    count_params_gguf,
    count_params_local,
    dtype_name,
    resolve_dtype,
)
from safetyscope.paths import atomic_output_dir, cache_dir


@dataclass
class LoadedModel:
    """A model ready for analysis: the HF model, its tokenizer, architecture and chat formatter."""

    model: PreTrainedModel
    tokenizer: Any
    arch: ResolvedArchitecture
    chat: ChatFormatter
    spec: str
    path: Path | None
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def family(self) -> str:
        """Architecture family name (the map's ``family``)."""
        return self.arch.map.family

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks."""
        return self.arch.n_layers

    @property
    def d_model(self) -> int:
        """Residual-stream width."""
        return int(self.arch.embed.weight.shape[1])

    @property
    def vocab_size(self) -> int:
        """Number of rows of the unembedding."""
        return int(self.arch.unembed.weight.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the model's parameters."""
        return next(self.model.parameters()).dtype

    @property
    def kind(self) -> str:
        """``"chat"`` or ``"base"``: the registry's word for pulled models, else whether a chat template exists."""
        from safetyscope.model.registry import model_kind

        return model_kind(self.path) or ("chat" if self.chat.has_template else "base")

    @property
    def device(self) -> torch.device:
        """Device of the input embedding (where input ids must go)."""
        return self.arch.embed.weight.device

    def fingerprint(self) -> str:
        """A short content hash of the weights (recomputed if the weights changed in place).

        Hashes every parameter's name, shape, dtype and a strided sample of its values, so any
        weight edit (e.g. orthogonalization) and any change of precision changes it. Used as a
        cache key and in provenance.
        """
        h = hashlib.sha256()
        with torch.no_grad():
            for name, p in self.model.state_dict().items():
                flat = p.detach().reshape(-1)
                step = max(1, flat.numel() // 256)
                sample = flat[::step][:256].to("cpu", torch.float32).contiguous()
                h.update(name.encode())
                h.update(f"{tuple(p.shape)}{p.dtype}".encode())
                h.update(sample.numpy().tobytes())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def provenance(self) -> dict[str, Any]:
        """What identifies the numbers a model produces: spec, weight fingerprint and dtype."""
        return {"model": self.spec, "model_fingerprint": self.fingerprint(), "model_dtype": dtype_name(self.dtype)}

    def info(self) -> dict[str, Any]:
        """Summary used by ``safetyscope info``."""
        return {
            "spec": self.spec,
            "path": str(self.path) if self.path else None,
            "family": self.family,
            "model_class": type(self.model).__name__,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "vocab_size": self.vocab_size,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "chat_template": self.chat.template_kind,
            "kind": self.kind,
            "modules": self.arch.module_paths(),
        }


def default_dtype_device(dtype: str | torch.dtype | None, device: str | None,
                         n_params: int | None = None) -> tuple[torch.dtype, str]:
    """The (dtype, device) a model is loaded with: CUDA when present; ``auto`` dtype rules in
    :func:`safetyscope.model.precision.resolve_dtype` (``None`` means ``auto``)."""
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_dtype(dtype, n_params=n_params, device=dev), dev


def _file_digest(path: Path) -> str:
    """Cheap, content-based identity of a large file: size + first and last MiB."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def convert_gguf(gguf: Path, out: Path | None = None, force: bool = False,
                 dtype: str | torch.dtype | None = "auto") -> Path:
    """Dequantize a GGUF file through transformers and save it once as a safetensors HF directory.

    The weights are stored in the dtype they will be used in (``auto``: bfloat16 for models above
    1B parameters on a bf16-capable CPU, see :mod:`safetyscope.model.precision`), so a 1.5B model
    takes 3 GB instead of 6. The result is cached under ``cache_dir("gguf")`` keyed by the file's
    content and the dtype, so later loads skip the (slow) dequantization. The GGUF quantization
    config is dropped before saving, since transformers refuses to ``save_pretrained`` a
    GGUF-quantized model.
    """
    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelLoadError(f"GGUF file {gguf} does not exist.")
    dt = resolve_dtype(dtype, n_params=count_params_gguf(gguf), device="cpu")
    suffix = "" if dt == torch.float32 else f"-{dtype_name(dt)}"
    target = out or cache_dir("gguf") / f"{gguf.stem}-{_file_digest(gguf)}{suffix}"
    if (target / "config.json").is_file() and not force:
        return target
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model, loading_info = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=dt, output_loading_info=True)
    except Exception as exc:  # transformers raises many types for unreadable files
        raise ModelLoadError(
            f"Could not read GGUF file {gguf}: {exc}. Is it a complete GGUF of a supported "
            "architecture? (`pip install gguf` is required.)"
        ) from exc
    check_loading_info(model, loading_info, str(gguf))  # never save random weights for missing tensors
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_output_dir(target, force=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "safetyscope_source.json").write_text(json.dumps({"gguf": str(gguf.resolve()), "dtype": dtype_name(dt)}))
    return target


def resolve_spec(spec: str | os.PathLike[str], dtype: str | torch.dtype | None = "auto") -> tuple[Path | None, str]:
    """Turn a user spec into a local HF directory, or ``(None, hub_id)`` for a hub download.

    Accepted: a local HF directory; a ``.gguf`` file; a pulled model name (``safetyscope models
    list``); ``organism[:SIZE[:SEED]][:arch=..][:behaviours=..][:init][:step=N]`` (see
    :class:`~safetyscope.organism.variant.OrganismVariant`); or a hub id ``org/name``.
    ``dtype`` is the dtype a GGUF file is converted to (see :func:`convert_gguf`).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        return convert_gguf(path, dtype=dtype), text
    if path.is_dir():
        if not (path / "config.json").is_file():
            found = sorted(p.name for p in path.iterdir())[:12]
            raise ModelLoadError(
                f"{path} is not a Hugging Face model directory: it has no config.json "
                f"(found: {found}). Point to the folder that contains config.json and the weights."
            )
        return path, text
    if path.exists():
        raise ModelLoadError(f"{path} is a file, not a model directory or a .gguf file.")
    if text == "organism" or text.startswith("organism:"):
        from safetyscope.organism.variant import resolve_organism_spec  # syntax: docs/organism.md

        return resolve_organism_spec(text), text
    from safetyscope.model.registry import KNOWN_MODELS, pulled_path

    if text in KNOWN_MODELS:
        pulled = pulled_path(text)
        if pulled is None:
            raise ModelLoadError(f"Model {text!r} is not pulled yet. Run `safetyscope models pull {text}`.")
        return pulled, text
    if "/" not in text and ":" not in text:
        from safetyscope.paths import cache_dir

        trained = cache_dir("trained") / text  # `safetyscope train MODEL --cache` (e.g. smollm2-135m-instruct-ssft)
        if (trained / "config.json").is_file():
            return trained, text
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep + os.sep in text:
        raise ModelLoadError(f"No such model directory or file: {text}")
    return None, text


def _auto_for(device: str) -> str:
    """``auto`` stays ``auto`` on CPU (decided from the GGUF's size); on CUDA a GGUF converts to bf16."""
    return "bfloat16" if device.startswith("cuda") else "auto"


def _config_params(config: Any) -> int | None:
    try:
        return count_params_config(config)
    except Exception:
        return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub endpoint accepts a TCP connection (``HF_ENDPOINT`` respected)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _tokenizer_class(local: Path | None) -> Any:
    """The class that loads a model folder's tokenizer: ``AutoTokenizer``, except for a plain
    ``tokenizer.json`` (``tokenizer_class: TokenizersBackend``, as organisms save theirs), which is
    loaded as written. AutoTokenizer would pick the model family's own class (e.g. Qwen2's byte-level
    BPE for a qwen2-architecture organism) and rebuild a different tokenizer from the file's vocabulary."""
    import transformers

    cfg = local / "tokenizer_config.json" if local is not None else None
    if cfg is not None and cfg.is_file() and (local / "tokenizer.json").is_file():  # type: ignore[operator]
        try:
            name = json.loads(cfg.read_text()).get("tokenizer_class")
        except (OSError, ValueError):
            name = None
        if name in ("TokenizersBackend", "PreTrainedTokenizerFast") and hasattr(transformers, name):
            return getattr(transformers, name)
    return AutoTokenizer


def load_model(
    spec: str | os.PathLike[str],
    *,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    arch_map: ArchitectureMap | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> LoadedModel:
    """Load a causal LM and bind its architecture map.

    Args:
        spec: local HF directory, ``.gguf`` file, pulled model name, ``organism[:size[:seed]]``,
            or a hub id (needs a reachable hub; offline it fails with a clear message).
        dtype: ``auto`` (default; ``None`` too), ``float32``, ``bfloat16``, ``float16`` or a torch
            dtype. ``auto``: bfloat16 on CUDA, and on a bf16-capable CPU for models above 1B
            parameters; float32 otherwise.
        device: ``cpu``/``cuda``/``cuda:1``...; default CUDA when available.
        device_map: passed to transformers (e.g. ``"auto"`` to shard a model over several GPUs);
            when set, ``device`` is ignored.
        arch_map: an explicit :class:`ArchitectureMap` for families safetyscope does not know.
        trust_remote_code: allow the model repo's own Python code to run. Off unless asked.
        revision: hub revision.

    Raises:
        ModelLoadError: missing/malformed model, offline hub, unreadable GGUF.
        UnknownArchitectureError: no architecture map fits (the message lists candidates).
    """
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    local, name = resolve_spec(spec, dtype=dtype if dtype not in (None, "auto") else _auto_for(dev))
    source = str(local) if local is not None else name
    offline = local is None and not hub_reachable()
    try:
        config = AutoConfig.from_pretrained(
            source, trust_remote_code=trust_remote_code, revision=revision, local_files_only=offline
        )
    except OSError as exc:
        if local is None:
            raise ModelLoadError(
                f"Could not load {name!r} from the Hugging Face hub ({exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}). {'The hub is unreachable from here. ' if offline else ''}If you are offline, download the "
                "model elsewhere and pass its local directory, or a .gguf file, instead."
            ) from exc
        raise ModelLoadError(f"Malformed model directory {local}: {exc}") from exc
    except ValueError as exc:
        raise ModelLoadError(f"Unsupported or malformed config for {source}: {exc}") from exc
    n_params = count_params_local(local) if local is not None else None
    dt, dev = default_dtype_device(dtype, dev, n_params if n_params is not None else _config_params(config))
    kwargs: dict[str, Any] = dict(
        dtype=dt, trust_remote_code=trust_remote_code, revision=revision, local_files_only=offline
    )
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model, loading_info = AutoModelForCausalLM.from_pretrained(
            source, config=config, output_loading_info=True, **kwargs)
        tokenizer = _tokenizer_class(local).from_pretrained(
            source, trust_remote_code=trust_remote_code, revision=revision, local_files_only=offline
        )
    except Exception as exc:  # transformers, torch and safetensors raise many types for bad files
        raise load_failure(exc, source) from exc
    check_loading_info(model, loading_info, source)  # missing/unexpected weights are an error
    if device_map is None:
        model.to(dev)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "left"
    arch = resolve_architecture(model, arch_map)
    return LoadedModel(model=model, tokenizer=tokenizer, arch=arch, chat=ChatFormatter(tokenizer),
                       spec=str(spec), path=local)
