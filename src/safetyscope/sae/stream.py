"""Stream activations at one site into shards, and read them back shuffled through a bounded buffer.

:func:`stream_activations` runs a :class:`~safetyscope.sae.corpus.TokenCorpus` through the model in
length-sorted batches (the package's one runner, :func:`safetyscope.batching.iter_batches`), reads
the site with :func:`safetyscope.activations.record` (the pass stops after the site), and keeps the
selected rows in shards of about ``shard_rows`` rows: in memory, or as safetensors files in a
folder with a ``manifest.json``. A shard is written only at a batch boundary and the manifest
records how many sequences it covers, so an interrupted run resumes after its last shard and a
finished one returns at once.

:meth:`ActivationStore.batches` reads shards in a seeded random order into a buffer of at most
``buffer_rows`` (+ one shard) rows, shuffles it, and hands out half of it before reading the next
shard: memory stays bounded however large the corpus is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from safetyscope import __version__
from safetyscope.activations.hooks import record, run_until_stopped
from safetyscope.activations.sites import Site
from safetyscope.batching import iter_batches, pad_id, pad_left
from safetyscope.errors import CacheError, SafetyscopeError
from safetyscope.model.loading import LoadedModel
from safetyscope.outputs import atomic_file
from safetyscope.sae.corpus import TokenCorpus

MANIFEST = "manifest.json"


@dataclass
class ActivationStore:
    """Activation rows at one site, in shards (tensors in memory or safetensors files)."""

    site: Site
    d_in: int
    shards: list[Tensor | Path]
    rows_per_shard: list[int]
    provenance: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # time spent streaming (0 when served from disk)
    index: list[Tensor] | None = None  # in-memory stores: [rows, 2] (sequence, position) per shard

    @property
    def n_rows(self) -> int:
        """Total activation rows (tokens)."""
        return sum(self.rows_per_shard)

    def shard(self, i: int) -> Tensor:
        """Shard ``i`` as float32 ``[rows, d_in]``."""
        s = self.shards[i]
        return (load_file(str(s))["activations"] if isinstance(s, Path) else s).float()

    def shard_index(self, i: int) -> Tensor:
        """``[rows, 2]`` (sequence index in the corpus, token position) of each row of shard ``i``."""
        s = self.shards[i]
        if isinstance(s, Path):
            return load_file(str(s))["index"].long()
        assert self.index is not None
        return self.index[i]

    def mean(self) -> Tensor:
        """Mean row ``[d_in]`` (float64, streamed over shards)."""
        total = torch.zeros(self.d_in, dtype=torch.float64)
        for i in range(len(self.shards)):
            total += self.shard(i).double().sum(0)
        return total / max(1, self.n_rows)

    def all_rows(self) -> Tensor:
        """Every row, in stream order (only for stores that fit in memory)."""
        return torch.cat([self.shard(i) for i in range(len(self.shards))])

    def batches(self, batch_size: int, *, seed: int = 0, buffer_rows: int = 65536, epochs: int | None = 1,
                drop_last: bool = True) -> Iterator[Tensor]:
        """Shuffled batches ``[batch_size, d_in]`` (see the module docstring); ``epochs=None`` loops forever."""
        if batch_size < 1 or buffer_rows < batch_size:
            raise SafetyscopeError(f"Need 1 <= batch_size ({batch_size}) <= buffer_rows ({buffer_rows}).")
        if self.n_rows < batch_size and drop_last:
            raise SafetyscopeError(f"The activation store holds {self.n_rows} rows, fewer than one batch "
                                   f"({batch_size}); stream more tokens or lower the batch size.")
        gen = torch.Generator().manual_seed(seed)
        epoch = 0
        while epochs is None or epoch < epochs:
            buf = torch.empty(0, self.d_in)
            for i in torch.randperm(len(self.shards), generator=gen).tolist():
                buf = torch.cat([buf, self.shard(i)])
                if len(buf) < buffer_rows:
                    continue
                buf = buf[torch.randperm(len(buf), generator=gen)]
                while len(buf) - batch_size >= buffer_rows // 2:
                    yield buf[:batch_size]
                    buf = buf[batch_size:]
            buf = buf[torch.randperm(len(buf), generator=gen)]
            while len(buf) >= batch_size or (len(buf) and not drop_last):
                yield buf[:batch_size]
                buf = buf[batch_size:]
            epoch += 1

    @classmethod
    def open(cls, folder: Path) -> ActivationStore:
        """A finished store written by :func:`stream_activations` (raises :class:`CacheError` otherwise)."""
        man = _read_manifest(folder)
        if man is None or not man.get("complete"):
            raise CacheError(f"{folder} holds no finished activation stream (no complete {MANIFEST}); "
                             "rerun the stream into it to resume, or delete it.")
        return cls(Site.from_key(man["site"]), man["d_in"], [folder / s["file"] for s in man["shards"]],
                   [s["rows"] for s in man["shards"]], man["provenance"])


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"{path} is unreadable ({exc}); delete {folder} and stream again.") from exc


def _write_manifest(folder: Path, man: dict[str, Any]) -> None:
    with atomic_file(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(man, indent=1))


def stream_activations(lm: LoadedModel, corpus: TokenCorpus, site: Site, out: Path | None = None, *,
                       shard_rows: int = 32768, store_dtype: str = "float32", max_batch_tokens: int | None = None,
                       batch_size: int | None = None, progress: bool = True) -> ActivationStore:
    """Read ``site`` at the corpus' selected positions into an :class:`ActivationStore`.

    Args:
        out: a folder for safetensors shards (resumable), or ``None`` to keep shards in memory.
        shard_rows: rows per shard (a shard closes at the first batch boundary past it).
        store_dtype: ``float32``, ``bfloat16`` or ``float16`` rows on disk.
    """
    dtype = getattr(torch, store_dtype)
    provenance = {"model": lm.spec, "model_fingerprint": lm.fingerprint(), "site": site.key, "corpus": corpus.spec,
                  "corpus_hash": corpus.hash, "n_seqs": len(corpus.seqs), "n_tokens": corpus.n_tokens,
                  "store_dtype": store_dtype, "safetyscope_version": __version__}
    man: dict[str, Any] = {"site": site.key, "d_in": lm.d_model, "provenance": provenance, "shards": [],
                           "items_done": 0, "complete": False}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        old = _read_manifest(out)
        if old is not None:
            same = {k: old["provenance"].get(k) for k in ("model_fingerprint", "site", "corpus_hash", "store_dtype")}
            if same != {k: provenance[k] for k in same}:
                raise CacheError(f"{out} holds a stream of another model, site, corpus or dtype ({same}); "
                                 "choose another folder or delete it.")
            man = old
            if man["complete"]:
                return ActivationStore.open(out)
    shards: list[Tensor | Path] = [out / s["file"] for s in man["shards"]] if out is not None else []
    pending: list[Tensor] = []
    pending_index: list[Tensor] = []
    index: list[Tensor] = []
    seqs = corpus.seqs
    t0 = time.perf_counter()

    def flush(done: int) -> None:
        rows, where = torch.cat(pending), torch.cat(pending_index)
        pending.clear()
        pending_index.clear()
        if out is None:
            shards.append(rows)
            index.append(where)
            man["shards"].append({"rows": len(rows)})
            return
        name = f"shard-{len(man['shards']):05d}.safetensors"
        with atomic_file(out / name) as tmp:
            save_file({"activations": rows.contiguous(), "index": where.to(torch.int32).contiguous()}, str(tmp))
        shards.append(out / name)
        man["shards"].append({"file": name, "rows": len(rows)})
        man["items_done"] = done
        _write_manifest(out, man)

    def run(idx: list[int]) -> list[None]:
        batch = [seqs[i] for i in idx]
        got: dict[str, Tensor] = {}
        inputs = pad_left([s.ids for s in batch], pad_id(lm.tokenizer), lm.device)
        with record(lm.arch, [site], lambda _s, t: got.__setitem__("x", t)):
            run_until_stopped(lm.model, **inputs, use_cache=False)
        width = inputs["input_ids"].shape[1]
        r = torch.tensor([j for j, s in enumerate(batch) for _ in s.positions], device=lm.device)
        c = torch.tensor([width - len(s.ids) + p for s in batch for p in s.positions], device=lm.device)
        pending.append(got["x"][r, c].to("cpu", dtype))
        pending_index.append(torch.tensor([[i, p] for i, s in zip(idx, batch, strict=True) for p in s.positions],
                                          dtype=torch.long).view(-1, 2))
        return [None] * len(idx)

    lengths = [len(s.ids) for s in seqs]
    budget = max_batch_tokens or (65536 if lm.device.type == "cuda" else 8192)
    done = man["items_done"]
    with torch.inference_mode():
        for idx, _ in iter_batches(lengths, run, batch_size=batch_size, max_batch_tokens=budget, progress=progress,
                                   description=f"streaming {site.key}", start=done):
            done += len(idx)
            if sum(len(p) for p in pending) >= shard_rows:
                flush(done)
    if pending:
        flush(len(seqs))
    man["items_done"], man["complete"] = len(seqs), True
    if out is not None:
        _write_manifest(out, man)
    return ActivationStore(site, lm.d_model, shards, [s["rows"] for s in man["shards"]], provenance,
                           time.perf_counter() - t0, index if out is None else None)

