"""Controls a port is compared with (the mean of anchors is the method `mean`; the shuffled source
and the teacher ceiling are planned by the bench).

    random_port("ports/global_ridge", "ports/random", seed=0)

A random direction with the port's norm: every module of the reference adapter is replaced by a
random low-rank ΔW of the same rank and the same Frobenius norm. If a port does no better than
this, its gain comes from the size of the update, not its direction.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from loraport.adapters import LowRank, load_adapter, refactor, save_adapter


def random_like(lr: LowRank, gen: torch.Generator) -> LowRank:
    """A Gaussian rank-r ΔW with ‖ΔW‖_F equal to that of `lr`."""
    out, r, inp = lr.B.shape[0], lr.rank, lr.A.shape[1]
    B = torch.randn(out, r, generator=gen, dtype=torch.float64)
    A = torch.randn(r, inp, generator=gen, dtype=torch.float64)
    rand = LowRank(B, A)
    target, have = lr.norm_sq() ** 0.5, rand.norm_sq() ** 0.5
    return LowRank((B * (target / have if have > 0 else 0.0)).to(lr.B.dtype), A.to(lr.A.dtype))


def random_port(reference: str | Path, out: str | Path, *, seed: int = 0, force: bool = False) -> Path:
    """Write the random-direction twin of the adapter at `reference` (same modules, ranks, norms)."""
    t0 = time.perf_counter()
    ref = load_adapter(reference)
    gen = torch.Generator().manual_seed(seed)
    modules = {m: random_like(ref.lowrank(m), gen) for m in ref.modules}
    ranks = set(ref.ranks.values())
    rank = max(ranks)
    if len(ranks) > 1:
        modules = {m: refactor(lr, rank) if lr.rank < rank else lr for m, lr in modules.items()}
    prov = {
        "method": "random",
        "reference": str(ref.path),
        "seed": seed,
        "cost": {
            "seconds": round(time.perf_counter() - t0, 4),
            "steps": 0,
            "generated_tokens": 0,
            "data": "none",
        },
    }
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=float(ref.config["lora_alpha"]),
        use_rslora=bool(ref.config.get("use_rslora")),
        base_model=ref.base_model or "",
        provenance=prov,
        force=force,
    )
