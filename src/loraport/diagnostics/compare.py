"""Adapters against each other: subspace overlap, cosine, and a PCA of a set of adapters.

    subspace_overlap(a.lowrank(m), b.lowrank(m), k=8)      # 1: same top-8 column space, 0: orthogonal
    adapter_overlap(mods_a, mods_b)                         # per shared module, and the mean
    adapter_pca([mods_1, mods_2, ...], dims=3)              # coordinates and explained variance

Subspace overlap of two deltas: ‖U_aᵀU_b‖²_F / min(k_a, k_b) for their top singular subspaces
(left: output side, right: input side); cosine: ⟨ΔW_a, ΔW_b⟩_F / (‖ΔW_a‖‖ΔW_b‖).

PCA: each adapter is one point, the concatenation of all its ΔW (over the modules every adapter
has). The points are never formed: the n×n Gram of Frobenius inner products summed over modules
(`cross_gram`, from the factors) is centred and eigen-decomposed (kernel PCA with a linear kernel,
which equals PCA of the flattened deltas); coordinates are V·√λ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loraport.adapters import LowRank, gram, inner
from loraport.diagnostics.spectrum import left_vectors, right_vectors


def subspace_overlap(a: LowRank, b: LowRank, k: int | None = None, side: str = "left") -> float:
    """‖U_aᵀU_b‖²_F / min(k_a, k_b) for the top-k singular vectors of each ΔW (k ≤ both ranks;
    None: each adapter's full rank). `side` "left" compares output spaces, "right" input spaces."""
    vectors = {"left": left_vectors, "right": right_vectors}.get(side)
    if vectors is None:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    ua, ub = vectors(a, k), vectors(b, k)
    return float((ua.T @ ub).pow(2).sum()) / min(ua.shape[1], ub.shape[1])


def delta_cosine(a: LowRank, b: LowRank) -> float:
    """Cosine of the flattened ΔWs (0 when either is zero)."""
    na, nb = a.norm_sq(), b.norm_sq()
    return float(inner(a, b)) / (na * nb) ** 0.5 if na > 0 and nb > 0 else 0.0


@dataclass(frozen=True)
class Overlap:
    """Two adapters compared module by module, with the means over their shared modules."""

    modules: dict[str, tuple[float, float]]  # module -> (subspace overlap, cosine)
    overlap: float
    cosine: float


def adapter_overlap(a: dict[str, LowRank], b: dict[str, LowRank], k: int | None = None) -> Overlap:
    shared = [m for m in a if m in b]
    if not shared:
        raise ValueError("the two adapters share no module")
    per = {m: (subspace_overlap(a[m], b[m], k), delta_cosine(a[m], b[m])) for m in shared}
    n = len(per)
    return Overlap(per, sum(v[0] for v in per.values()) / n, sum(v[1] for v in per.values()) / n)


@dataclass(frozen=True)
class PCA:
    """Adapters as points: `coords` (n × dims) and each axis's share of the total variance."""

    coords: torch.Tensor
    explained: list[float]


def adapter_pca(adapters: list[dict[str, LowRank]], dims: int = 2) -> PCA:
    """PCA of `adapters` (each a module → factors dict) in 2-D or 3-D (see the module docstring)."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if len(adapters) < 2:
        raise ValueError("a PCA needs at least two adapters")
    shared = [m for m in adapters[0] if all(m in a for a in adapters[1:])]
    if not shared:
        raise ValueError("the adapters share no module")
    n = len(adapters)
    K = torch.zeros(n, n, dtype=torch.float64)
    for m in shared:
        K += gram([a[m] for a in adapters])
    H = torch.eye(n, dtype=torch.float64) - 1.0 / n
    evals, evecs = torch.linalg.eigh(H @ K @ H)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order].clamp_min(0), evecs[:, order]
    total = float(evals.sum())
    coords = evecs[:, :dims] * evals[:dims].sqrt()
    if coords.shape[1] < dims:  # fewer adapters than axes: pad with zeros
        coords = torch.cat([coords, coords.new_zeros(n, dims - coords.shape[1])], 1)
    # a fixed sign per axis (largest-magnitude coordinate positive) so plots are reproducible
    idx = coords.abs().argmax(0)
    signs = torch.sign(coords[idx, torch.arange(dims)])
    signs[signs == 0] = 1
    explained = [float(v) / total if total else 0.0 for v in evals[:dims]]
    explained += [0.0] * (dims - len(explained))
    return PCA(coords * signs, explained)
