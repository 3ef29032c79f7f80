"""What an adapter's weights look like: the ΔW spectrum per module and ‖ΔW‖ along depth.

    s = singular_values(adapter.lowrank("model.layers.3.mlp.down_proj"))
    spectrum_stats(s)          # SpectrumStats(effective_rank=..., stable_rank=..., rank90=..., top_energy=...)
    depth_profile(modules)     # {"q_proj": [‖ΔW‖ of layer 0, layer 1, ...], ...}

For σ_1 ≥ σ_2 ≥ … the singular values of ΔW:
- effective rank erank = exp(H(p)), p_i = σ_i/Σσ (Roy & Vetterli 2007): k for k equal values;
- stable rank ‖ΔW‖²_F/‖ΔW‖²_2 = Σσ²/σ_1²;
- rank90: the fewest components holding 90% of the energy Σσ²;
- top-k energy: Σ_{i≤k} σ_i²/Σσ².
The singular values come from the r×r core of the factors (ΔW = Q_B·(R_B R_Aᵀ)·Q_Aᵀ after thin QR of B
and Aᵀ), in float64, so a 8192×3072 module costs an r×r SVD, not a dense one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from loraport.adapters import LowRank

TOP_K = 4
ENERGY = 0.9
_LAYER = re.compile(r"\.(\d+)\.")


def _core(lr: LowRank) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    qb, rb = torch.linalg.qr(lr.B.double())
    qa, ra = torch.linalg.qr(lr.A.double().T)
    return qb, rb @ ra.T, qa


def singular_values(lr: LowRank) -> torch.Tensor:
    """The singular values of ΔW = B·A, largest first (float64, `rank` of them)."""
    _, core, _ = _core(lr)
    return torch.linalg.svdvals(core)


def left_vectors(lr: LowRank, k: int | None = None) -> torch.Tensor:
    """The top-k left singular vectors of ΔW (out × k, float64; k ≤ rank)."""
    qb, core, _ = _core(lr)
    U, _, _ = torch.linalg.svd(core)
    return qb @ U[:, : k or core.shape[0]]


def right_vectors(lr: LowRank, k: int | None = None) -> torch.Tensor:
    """The top-k right singular vectors of ΔW (in × k, float64; k ≤ rank)."""
    _, core, qa = _core(lr)
    _, _, Vh = torch.linalg.svd(core)
    return qa @ Vh[: k or core.shape[0]].T


@dataclass(frozen=True)
class SpectrumStats:
    """Summary of one ΔW spectrum (see the module docstring)."""

    norm: float  # ‖ΔW‖_F
    top: float  # σ_1
    effective_rank: float
    stable_rank: float
    rank90: int
    top_energy: float  # energy share of the top `TOP_K` components


def effective_rank(s: torch.Tensor) -> float:
    s = s[s > 0].double()
    if len(s) == 0:
        return 0.0
    p = s / s.sum()
    return math.exp(float(-(p * p.log()).sum()))


def stable_rank(s: torch.Tensor) -> float:
    return float((s.double() ** 2).sum() / s.max() ** 2) if float(s.max()) > 0 else 0.0


def energy_rank(s: torch.Tensor, share: float = ENERGY) -> int:
    """The fewest leading components whose energy Σσ² reaches `share` of the total (0 for ΔW = 0)."""
    e = torch.sort(s.double(), descending=True).values ** 2
    total = float(e.sum())
    if total == 0:
        return 0
    return int((torch.cumsum(e, 0) / total < share - 1e-12).sum()) + 1


def top_energy(s: torch.Tensor, k: int = TOP_K) -> float:
    e = torch.sort(s.double(), descending=True).values ** 2
    total = float(e.sum())
    return float(e[:k].sum()) / total if total else 0.0


def spectrum_stats(s: torch.Tensor, k: int = TOP_K) -> SpectrumStats:
    s = s.double()
    return SpectrumStats(
        norm=float(s.norm()),
        top=float(s.max()) if len(s) else 0.0,
        effective_rank=effective_rank(s),
        stable_rank=stable_rank(s),
        rank90=energy_rank(s),
        top_energy=top_energy(s, k),
    )


def module_spectra(modules: dict[str, LowRank], k: int = TOP_K) -> dict[str, SpectrumStats]:
    """`spectrum_stats` of every module of an adapter."""
    return {name: spectrum_stats(singular_values(lr), k) for name, lr in modules.items()}


def layer_of(name: str) -> int:
    """The layer index in a module name (model.layers.3.mlp.up_proj → 3)."""
    match = _LAYER.search(name)
    if match is None:
        raise ValueError(f"no layer index in module name {name!r}")
    return int(match.group(1))


def role_of(name: str) -> str:
    """The projection's short name (model.layers.3.mlp.up_proj → up_proj)."""
    return name.rsplit(".", 1)[-1]


def depth_profile(modules: dict[str, LowRank]) -> dict[str, list[float]]:
    """‖ΔW‖_F per role along depth: role → one value per layer (0.0 where the layer has no such
    module), layers 0..max layer of the adapter."""
    depth = max(layer_of(n) for n in modules) + 1 if modules else 0
    out: dict[str, list[float]] = {}
    for name, lr in modules.items():
        row = out.setdefault(role_of(name), [0.0] * depth)
        row[layer_of(name)] = math.sqrt(max(lr.norm_sq(), 0.0))
    return dict(sorted(out.items()))
