"""The result of a collection: per-site rows or streaming moments, with provenance, on disk as safetensors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from safetyscope.activations.sites import Positions, Site
from safetyscope.activations.stats import RunningMoments
from safetyscope.errors import SafetyscopeError

REDUCES = ("none", "mean", "cov", "paired_diff")


@dataclass
class ActivationResult:
    """Activations at residual-stream sites for a prompt set.

    With ``reduce="none"`` (or ``"paired_diff"``) every selected token gives one row per site:
    ``rows[site.key]`` is ``[n_rows, d_model]`` and ``prompt_index`` / ``token_position`` say
    which prompt and which (unpadded) token each row came from, in input order. With
    ``reduce="mean"`` or ``"cov"`` only float64 streaming moments are kept (memory flat in N).
    """

    sites: list[Site]
    positions: Positions
    reduce: str
    n_prompts: int
    rows: dict[str, Float[Tensor, "n_rows d"]] = field(default_factory=dict)
    prompt_index: Int[Tensor, " n_rows"] | None = None
    token_position: Int[Tensor, " n_rows"] | None = None
    moments: dict[str, RunningMoments] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def _check(self, site: Site | str) -> str:
        key = site.key if isinstance(site, Site) else site
        if key not in {s.key for s in self.sites}:
            raise SafetyscopeError(f"Site {key} was not collected; collected: {[s.key for s in self.sites]}.")
        return key

    def mean(self, site: Site | str) -> Float[Tensor, " d"]:
        """Mean activation at ``site`` over all selected tokens (float64)."""
        key = self._check(site)
        if key in self.moments:
            return self.moments[key].mean
        return self.rows[key].to(torch.float64).mean(0)

    def cov(self, site: Site | str) -> Float[Tensor, "d d"]:
        """Covariance at ``site`` (needs ``reduce="cov"`` or kept rows)."""
        key = self._check(site)
        if key in self.moments and self.moments[key].sum_outer is not None:
            return self.moments[key].cov()
        if key in self.rows:
            return torch.cov(self.rows[key].to(torch.float64).T)
        raise SafetyscopeError("Covariance needs reduce='cov' or reduce='none'.")

    def per_prompt(self, site: Site | str) -> Float[Tensor, "n k d"]:
        """Rows reshaped to ``[n_prompts, k, d]`` when every prompt has the same number ``k`` of tokens."""
        key = self._check(site)
        if key not in self.rows or self.prompt_index is None:
            raise SafetyscopeError(f"per_prompt needs kept rows (reduce='none'); this result has reduce={self.reduce!r}.")
        counts = torch.bincount(self.prompt_index, minlength=self.n_prompts)
        if counts.min() != counts.max():
            raise SafetyscopeError(
                f"Prompts have different numbers of selected tokens ({int(counts.min())}..{int(counts.max())}); "
                "use rows + prompt_index, or a single-token position selector such as eoi:-1."
            )
        return self.rows[key].reshape(self.n_prompts, int(counts[0]), -1)

    def stacked(self, reduce_tokens: str = "mean") -> Float[Tensor, "n layers d"]:
        """``[n_prompts, n_sites, d]``: each prompt's tokens averaged (or ``"last"``) per site."""
        out = []
        for site in self.sites:
            per = self.per_prompt(site)
            out.append(per.mean(1) if reduce_tokens == "mean" else per[:, -1])
        return torch.stack(out, 1)

    def save(self, path: str | Path) -> Path:
        """Write tensors and metadata to one ``.safetensors`` file."""
        tensors: dict[str, Tensor] = {f"rows.{k}": v.contiguous() for k, v in self.rows.items()}
        if self.prompt_index is not None and self.token_position is not None:
            tensors["prompt_index"] = self.prompt_index
            tensors["token_position"] = self.token_position
        for key, mom in self.moments.items():
            tensors.update(mom.state(f"moments.{key}"))
        meta = {
            "sites": [s.key for s in self.sites], "positions": self.positions.key, "reduce": self.reduce,
            "n_prompts": self.n_prompts, "provenance": self.provenance,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from safetyscope.outputs import atomic_file

        with atomic_file(path) as tmp:  # a failed write leaves neither a partial file nor *.tmp debris
            save_file(tensors, str(tmp), metadata={"safetyscope": json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActivationResult:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            raw = (fh.metadata() or {}).get("safetyscope")
        if raw is None:
            raise SafetyscopeError(f"{path} was not written by safetyscope (no metadata).")
        meta = json.loads(raw)
        tensors = load_file(str(path))
        sites = [Site.from_key(k) for k in meta["sites"]]
        return cls(
            sites=sites,
            positions=Positions.parse(meta["positions"]),
            reduce=meta["reduce"],
            n_prompts=meta["n_prompts"],
            rows={k.removeprefix("rows."): v for k, v in tensors.items() if k.startswith("rows.")},
            prompt_index=tensors.get("prompt_index"),
            token_position=tensors.get("token_position"),
            moments={s.key: RunningMoments.from_state(tensors, f"moments.{s.key}")
                     for s in sites if f"moments.{s.key}.sum" in tensors},
            provenance=meta["provenance"],
        )
