"""Synthetic LoRA adapters with the exact module names and shapes of a base, for tests and
benchmarks (no training). Factors are Gaussian with a decaying per-component scale, like trained
adapters whose spectra fall off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from loraport.adapters.lowrank import LowRank
from loraport.adapters.peft_io import save_adapter
from loraport.arch import arch_for


def synthetic_adapter(
    config: Any,
    out: str | Path,
    *,
    rank: int = 4,
    alpha: float = 8.0,
    seed: int = 0,
    base_model: str = "synthetic",
    roles: tuple[str, ...] | None = None,
    task: str | None = None,
    scale: float = 0.02,
    force: bool = False,
) -> Path:
    arch = arch_for(config)
    gen = torch.Generator().manual_seed(seed)
    decay = torch.tensor([0.7**i for i in range(rank)])
    modules = {}
    for info in arch.modules():
        if roles is not None and not set(info.roles) & set(roles):
            continue
        out_dim, in_dim = info.shape
        B = torch.randn(out_dim, rank, generator=gen) * scale * decay
        A = torch.randn(rank, in_dim, generator=gen) / in_dim**0.5
        modules[info.name] = LowRank(B, A)
    prov = {"synthetic_seed": seed, **({"task": task} if task else {})}
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=alpha,
        base_model=base_model,
        num_layers=arch.num_layers,
        provenance=prov,
        force=force,
    )
