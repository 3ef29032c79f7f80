"""ΔW algebra on factored matrices, never forming anything larger than the adapter itself.

A LoRA update is ΔW = s·B·A with B (out×r), A (r×in). Everything loraport computes between adapters
goes through gauge-invariant quantities — Frobenius inner products ⟨ΔW_i, ΔW_j⟩ and the products B·A —
so re-gauging an input's factors (B·R, R⁻¹·A) cannot change a port.

    >>> lr = LowRank(B, A)              # scaling already folded into B
    >>> gram([lr1, lr2, lr3])           # 3×3 matrix of ⟨ΔW_i, ΔW_j⟩ (float64)
    >>> refactor(lr, rank=16)           # canonical rank-16 factors of the same ΔW (truncated SVD)

Numerics: inner products and small eigen/SVD problems are computed in float64 because Gram
matrices of nearly parallel adapters are badly conditioned; the big factor products stay float32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass
class LowRank:
    """ΔW = B @ A, with any LoRA scaling already folded into B."""

    B: torch.Tensor  # (out, r)
    A: torch.Tensor  # (r, in)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.B.shape[0], self.A.shape[1])

    @property
    def rank(self) -> int:
        return self.B.shape[1]

    def dense(self) -> torch.Tensor:
        return self.B @ self.A

    def scaled(self, w: float) -> LowRank:
        return LowRank(self.B * w, self.A)

    def rows(self, start: int, stop: int) -> LowRank:
        return LowRank(self.B[start:stop], self.A)

    def norm_sq(self) -> float:
        return float(inner(self, self))


def inner(x: LowRank, y: LowRank) -> torch.Tensor:
    """⟨B_x A_x, B_y A_y⟩_F = trace((B_xᵀB_y)(A_y A_xᵀ)) in O((out+in)·r²)."""
    gb = x.B.double().T @ y.B.double()
    ga = x.A.double() @ y.A.double().T
    return (gb * ga).sum()


def cross_gram(xs: list[LowRank], ys: list[LowRank]) -> torch.Tensor:
    """Matrix of ⟨x_i, y_j⟩ (len(xs)×len(ys), float64) from two stacked products."""
    bx = torch.cat([x.B for x in xs], dim=1).double()
    by = torch.cat([y.B for y in ys], dim=1).double()
    ax = torch.cat([x.A for x in xs], dim=0).double()
    ay = torch.cat([y.A for y in ys], dim=0).double()
    prod = (bx.T @ by) * (ax @ ay.T)  # (Σr_x × Σr_y)
    return block_sum(prod, [x.rank for x in xs], [y.rank for y in ys])


def gram(xs: list[LowRank]) -> torch.Tensor:
    return cross_gram(xs, xs)


@functools.cache
def _block_index(ranks: tuple[int, ...]) -> torch.Tensor:
    """Owner of each stacked factor column: (0,0,0,0,1,1,1,1,...) for two rank-4 factors."""
    return torch.repeat_interleave(torch.arange(len(ranks)), torch.tensor(ranks))


def block_sum(m: torch.Tensor, rows: list[int], cols: list[int]) -> torch.Tensor:
    """Sum a (Σrows × Σcols) matrix over its (rows[i] × cols[j]) blocks: an elementwise product of
    stacked factor Grams summed per block gives ⟨ΔW_i, ΔW_j⟩."""
    ri, ci = _block_index(tuple(rows)), _block_index(tuple(cols))
    out = torch.zeros(len(rows), len(cols), dtype=m.dtype)
    out.index_put_((ri[:, None].expand_as(m), ci[None, :].expand_as(m)), m, accumulate=True)
    return out


def concat(parts: list[LowRank], weights: list[float] | torch.Tensor | None = None) -> LowRank:
    """Σ_i w_i ΔW_i as one factored matrix of rank Σ r_i (exact, no truncation)."""
    if weights is None:
        weights = [1.0] * len(parts)
    B = torch.cat([p.B * float(w) for p, w in zip(parts, weights, strict=True)], dim=1)
    A = torch.cat([p.A for p in parts], dim=0)
    return LowRank(B, A)


def stack_rows(parts: list[LowRank]) -> LowRank:
    """[ΔW_1; ΔW_2; ...] stacked along the output dimension (fused projections such as qkv_proj)."""
    B = torch.block_diag(*[p.B for p in parts])
    A = torch.cat([p.A for p in parts], dim=0)
    return LowRank(B, A)


def _finish(B: torch.Tensor, A: torch.Tensor, rank: int) -> LowRank:
    """Canonical signs (each column of B has its largest-magnitude entry positive) and zero-padding
    to exactly `rank` components, so equal ΔWs always give equal factors of a fixed shape."""
    idx = B.abs().argmax(dim=0)
    signs = torch.sign(B[idx, torch.arange(B.shape[1])])
    signs[signs == 0] = 1
    B, A = B * signs, A * signs[:, None]
    k = B.shape[1]
    if k < rank:
        B = torch.cat([B, B.new_zeros(B.shape[0], rank - k)], dim=1)
        A = torch.cat([A, A.new_zeros(rank - k, A.shape[1])], dim=0)
    return LowRank(B, A)


def top_svd(m: torch.Tensor, k: int, power_iters: int = 4):
    """Top-k singular triplets of a small dense matrix.

    Cores up to 256 wide get an exact full SVD. Wider ones (N·r = 384 for 24 anchors of rank 16,
    ~30 ms each for a full SVD, and a port needs ~200) use a randomized range finder with 2k
    columns and `power_iters` power iterations (Halko et al. 2011): exact when the core has rank
    ≤ 2k, and otherwise within a small factor of the optimal rank-k error, well below the
    differences between port methods. The random start is seeded, so ports are reproducible.
    """
    n = min(m.shape)
    if n <= max(4 * k, 256):
        U, S, Vh = torch.linalg.svd(m, full_matrices=False)
        return U[:, :k], S[:k], Vh[:k]
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(m @ torch.randn(m.shape[1], 2 * k, generator=gen, dtype=m.dtype))
    for _ in range(power_iters):
        z, _ = torch.linalg.qr(m.T @ q)
        q, _ = torch.linalg.qr(m @ z)
    u_small, S, Vh = torch.linalg.svd(q.T @ m, full_matrices=False)
    return q @ u_small[:, :k], S[:k], Vh[:k]


def refactor(lr: LowRank, rank: int) -> LowRank:
    """Best rank-`rank` approximation of ΔW in canonical factors B = U√S, A = √S Vᵀ.

    Works through thin QR of both factors, so the SVD is of a (r_in × r_in) core, not of ΔW.
    The result is zero-padded when ΔW has lower rank than asked, so shapes are always (out, rank).
    """
    dtype = lr.B.dtype
    qb, rb = torch.linalg.qr(lr.B.double())
    qa, ra = torch.linalg.qr(lr.A.double().T)
    U, S, Vh = top_svd(rb @ ra.T, rank)
    root = S.sqrt()
    return _finish(((qb @ U) * root).to(dtype), (root[:, None] * (Vh @ qa.T)).to(dtype), rank)


def refactor_dense(delta: torch.Tensor, rank: int) -> LowRank:
    """Canonical rank-`rank` factors of a dense ΔW (for small matrices and tests)."""
    U, S, Vh = torch.linalg.svd(delta.double(), full_matrices=False)
    root = S[:rank].sqrt()
    B, A = U[:, :rank] * root, root[:, None] * Vh[:rank]
    return _finish(B.to(delta.dtype), A.to(delta.dtype), rank)


class SpanBasis:
    """Fast re-factoring of any weighted sum Σ_j w_j ΔW_j over one fixed list of anchors.

    Precomputed once per tensor at fit time from the (Σr × Σr) Gram matrices of the stacked factors;
    afterwards `combine(w, rank)` costs one small SVD plus two thin products, independent of how many
    times it is called. Used by every anchor method, since each predicts a point in the span of the
    target anchors.
    """

    def __init__(self, anchors: list[LowRank], tol: float = 1e-10) -> None:
        Bc = torch.cat([a.B for a in anchors], dim=1).double()
        Ac = torch.cat([a.A for a in anchors], dim=0).double()
        self._set(Bc.T @ Bc, Ac @ Ac.T, [a.rank for a in anchors], tol)

    @classmethod
    def from_grams(
        cls, GB: torch.Tensor, GA: torch.Tensor, ranks: list[int], tol: float = 1e-10
    ) -> SpanBasis:
        """From the Grams of the stacked factors (BᵀB and AAᵀ), when the caller already has them."""
        obj = cls.__new__(cls)
        obj._set(GB, GA, ranks, tol)
        return obj

    def _set(self, GB: torch.Tensor, GA: torch.Tensor, ranks: list[int], tol: float) -> None:
        self.ranks = ranks
        self.pb, self.rb = _whiten(GB, tol)
        self.pa, self.ra = _whiten(GA, tol)

    def state(self) -> dict[str, torch.Tensor]:
        return {"pb": self.pb, "rb": self.rb, "pa": self.pa, "ra": self.ra}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], ranks: list[int]) -> SpanBasis:
        obj = cls.__new__(cls)
        obj.ranks = ranks
        obj.pb, obj.rb, obj.pa, obj.ra = (state[k].double() for k in ("pb", "rb", "pa", "ra"))
        return obj

    def combine(self, anchors: list[LowRank], w: torch.Tensor, rank: int) -> LowRank:
        d = torch.repeat_interleave(w.double(), torch.tensor(self.ranks), output_size=sum(self.ranks))
        core = (self.rb * d) @ self.ra.T  # R_B · diag(w) · R_Aᵀ
        U, S, Vh = top_svd(core, rank)
        root = S.sqrt()
        Bc = torch.cat([a.B for a in anchors], dim=1)
        Ac = torch.cat([a.A for a in anchors], dim=0)
        left = (self.pb @ U * root).to(Bc.dtype)  # (Σr × k)
        right = (root[:, None] * (Vh @ self.pa.T)).to(Ac.dtype)  # (k × Σr)
        return _finish(Bc @ left, right @ Ac, rank)


def _whiten(g: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For G = MᵀM: P with M·P orthonormal columns and R with M = (M·P)·R (rank-revealing)."""
    evals, evecs = torch.linalg.eigh(g)
    keep = evals > tol * max(float(evals.max()), 1e-300)
    ev, V = evals[keep], evecs[:, keep]
    return V / ev.sqrt(), (V * ev.sqrt()).T
