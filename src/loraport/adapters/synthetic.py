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


def latent_pair_family(
    source_config: Any,
    target_config: Any,
    root: str | Path,
    tasks: list[str],
    *,
    latent_dim: int = 4,
    private_dim: int = 2,
    private_scale: float = 0.5,
    seed: int = 0,
    source_base: str = "source",
    target_base: str = "target",
) -> dict[str, tuple[Path, Path]]:
    """Adapter pairs whose source and target ΔWs share a hidden per-task latent z (a known ground truth
    for weight-space ports). On each base every module has `latent_dim` fixed rank-1 atoms; task t's
    ΔW is Σ_c z_tc·atom_c plus `private_dim` task-and-base-specific components that no map can
    predict. Rank = latent_dim + private_dim. Written to root/{x,y}/{task}."""
    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(tasks), latent_dim, generator=g)
    out: dict[str, tuple[Path, Path]] = {t: (root / "x" / t, root / "y" / t) for t in tasks}
    rank = latent_dim + private_dim
    for side, config, base in (("x", source_config, source_base), ("y", target_config, target_base)):
        arch = arch_for(config)
        atoms = {}
        for info in arch.modules():
            o, i = info.shape
            atoms[info.name] = (
                torch.randn(o, latent_dim, generator=g) * 0.02,
                torch.randn(latent_dim, i, generator=g) / i**0.5,
            )
        for ti, task in enumerate(tasks):
            modules = {}
            for info in arch.modules():
                o, i = info.shape
                b, a = atoms[info.name]
                pb = torch.randn(o, private_dim, generator=g) * 0.02 * private_scale
                pa = torch.randn(private_dim, i, generator=g) / i**0.5
                modules[info.name] = LowRank(torch.cat([b * z[ti], pb], 1), torch.cat([a, pa], 0))
            save_adapter(
                root / side / task,
                modules,
                rank=rank,
                alpha=float(rank),
                base_model=base,
                num_layers=arch.num_layers,
                provenance={"task": task, "synthetic_seed": seed},
                force=True,
            )
    return out
