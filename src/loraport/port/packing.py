"""The anchors' factors as a map packs them, and the two computations a port does with them.

Pure tensor code (no I/O). Per logical tensor key the map holds, in half precision (float16):

  source side ("s/KEY/..."): the N anchors' stacked factors, each column of B and each row of A
    scaled to unit norm (norms kept in float32): Bt (N·r × out), A (N·r × in), bs, as_.
    A port needs them only for the kernel k_j = ⟨ΔW_x, ΔW_j⟩ of its input.
  target side ("t/KEY/..."): orthonormal bases of the stacked target factors' spans and the
    anchors' coordinates in them, B_c = QB·RB and A_cᵀ = QA·RA (QB out×k_B, QA in×k_A in float16;
    RB k_B×N·r, RA k_A×N·r in float32). Any Σ_j w_j ΔW_j is then QB·(RB·diag(w)·RAᵀ)·QAᵀ, and
    its best rank-r factors come from the exact SVD of that small core and two thin products.

Why float16 and not bfloat16: both halve the bytes, but bfloat16 keeps 8 significand bits (relative
rounding up to 2⁻⁹ ≈ 2e-3) and a port must stay within 1e-3 of the float64 port; float16 keeps 11
(≤ 2.4e-4). Measured on the tests' Qwen2 → Llama pair, worst module per method: 3.1e-4 to 4.3e-4
with float16, 2.5e-3 to 3.5e-3 with bfloat16. float16's narrow range is why the factors are stored normalised: unit-norm columns and
orthonormal bases have entries near 1/√dim, far from both overflow and the subnormals.

Why bases on the target side: the output is Σ_j w_j ΔW_j, and ridge weights can be large with
opposite signs, so rounding each anchor's factors would be amplified by the cancellation; rounding
an orthonormal basis perturbs the output by the same small relative amount whatever w is (the
coordinates RB, RA, where the weights act, stay float32).
"""

from __future__ import annotations

import torch

from loraport.adapters.lowrank import LowRank, _finish, block_sum

HALF = torch.float16
#: Eigenvalues of a float32 factor Gram below this fraction of the largest are rounding noise.
GRAM_TOL = 1e-7


def _stack(parts: list[LowRank]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([p.B for p in parts], dim=1).float(), torch.cat([p.A for p in parts], dim=0).float()


def kernel_gram(Bc: torch.Tensor, Ac: torch.Tensor, ranks: list[int]) -> tuple[torch.Tensor, ...]:
    """(K, GB, GA): N×N Gram of the ΔWs and the (N·r)² Grams of the stacked factors. The big
    products run in float32 (~1e-6 relative, far below what a port resolves); the small results
    are float64 for the solves that follow."""
    GB = (Bc.T @ Bc).double()
    GA = (Ac @ Ac.T).double()
    return block_sum(GB * GA, ranks, ranks), GB, GA


def pack_source(parts: list[LowRank]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(K, tensors) for one source key: the ΔW Gram of the anchors and what the map stores."""
    Bc, Ac = _stack(parts)
    K, _, _ = kernel_gram(Bc, Ac, [p.rank for p in parts])
    bs = Bc.norm(dim=0).clamp_min(1e-30)
    as_ = Ac.norm(dim=1).clamp_min(1e-30)
    tensors = {
        "Bt": (Bc / bs).T.to(HALF).contiguous(),
        "A": (Ac / as_[:, None]).to(HALF).contiguous(),
        "bs": bs,
        "as_": as_,
    }
    return K, tensors


def _basis(M: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For M (dim × N·r) with Gram G = MᵀM: Q (dim × k, orthonormal columns) and R (k × N·r) with
    M = Q·R, keeping the k eigen-directions of G above rounding noise."""
    evals, evecs = torch.linalg.eigh(G)
    keep = evals > GRAM_TOL * max(float(evals.max()), 1e-300)
    ev, V = evals[keep], evecs[:, keep]
    Q = M @ (V / ev.sqrt()).float()
    return Q, (V * ev.sqrt()).T.float()


def pack_target(parts: list[LowRank]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(K, tensors) for one target key."""
    Bc, Ac = _stack(parts)
    K, GB, GA = kernel_gram(Bc, Ac, [p.rank for p in parts])
    QB, RB = _basis(Bc, GB)
    QA, RA = _basis(Ac.T, GA)
    tensors = {"QB": QB.to(HALF).contiguous(), "RB": RB, "QA": QA.to(HALF).contiguous(), "RA": RA}
    return K, tensors


class Scratch:
    """Products of a float16 tensor with a small float32 one, through a reusable float32 buffer of
    ~2 MB: converting each tensor whole into a fresh allocation would page-fault as much memory
    as the map holds, and a chunk that fits in cache makes the product about twice as fast."""

    CHUNK = 1 << 19  # elements of float32 per chunk (2 MB)

    def __init__(self) -> None:
        self._buf = torch.empty(self.CHUNK)

    def matmul(self, half: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        """half.float() @ small, row chunk by row chunk."""
        rows, cols = half.shape
        step = max(1, self.CHUNK // cols)
        if self._buf.numel() < step * cols:
            self._buf = torch.empty(step * cols)
        out = torch.empty(rows, small.shape[1])
        for i in range(0, rows, step):
            n = min(step, rows - i)
            tmp = self._buf[: n * cols].view(n, cols).copy_(half[i : i + n])
            torch.mm(tmp, small, out=out[i : i + n])
        return out


def _per_anchor(m: torch.Tensor, ranks: list[int]) -> torch.Tensor:
    """Sum an (N·r × k) matrix over each anchor's block of rows and all columns (float64)."""
    if len(set(ranks)) == 1:
        return m.double().view(len(ranks), -1).sum(1)
    return block_sum(m.double().T.contiguous(), [m.shape[1]], ranks)[0]


def source_kernel(
    x: LowRank, packed: dict[str, torch.Tensor], ranks: list[int], scratch: Scratch
) -> torch.Tensor:
    """⟨ΔW_x, ΔW_j⟩ for every anchor j of one source key (float64 vector)."""
    gb = scratch.matmul(packed["Bt"], x.B.float()) * packed["bs"][:, None]  # (N·r × r)
    ga = scratch.matmul(packed["A"], x.A.float().T) * packed["as_"][:, None]
    return _per_anchor(gb * ga, ranks)


def _exact_svd(C: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-`rank` (U, S, Vh) of C from the eigenvectors of the smaller of C·Cᵀ and Cᵀ·C."""
    flip = C.shape[0] > C.shape[1]
    if flip:
        C = C.T
    evals, evecs = torch.linalg.eigh(C @ C.T)
    k = min(rank, len(evals))
    U = evecs[:, -k:].flip(1)
    S = evals[-k:].flip(0).clamp_min(0).sqrt()
    Vh = (U.T @ C) / torch.where(S > 0, S, 1.0)[:, None]
    return (Vh.T, S, U.T) if flip else (U, S, Vh)


def core_svd(packed: dict[str, torch.Tensor], w: torch.Tensor, ranks: list[int], rank: int):
    """The exact top-`rank` SVD (U, S, Vh) of C = RB·diag(w)·RAᵀ, the combination in the bases'
    coordinates (float32).

    Exact, not randomized: when the combination's singular values near the rank-r cut are close
    (a flat spectrum: anchors that share little, weighted alike), a randomized range finder returns
    a different, about as good, rank-r approximation than the truncated SVD, and a port must be
    reproducible from the anchors. Through C·Cᵀ, which costs accuracy only in components below
    ~1e-3.5 of the largest (a negligible share of ΔW). When few anchors have nonzero weight (Top-K)
    the problem shrinks to their N_w·r columns first."""
    d = torch.repeat_interleave(w.float(), torch.tensor(ranks), output_size=sum(ranks))
    nz = d != 0
    L, R = packed["RB"][:, nz] * d[nz], packed["RA"][:, nz]
    if L.shape[1] < min(L.shape[0], R.shape[0]):
        qL, tL = torch.linalg.qr(L)
        qR, tR = torch.linalg.qr(R)
        U, S, Vh = _exact_svd(tL @ tR.T, rank)
        return qL @ U, S, Vh @ qR.T
    return _exact_svd(L @ R.T, rank)


def combine_target(
    packed: dict[str, torch.Tensor], w: torch.Tensor, ranks: list[int], rank: int, scratch: Scratch
) -> LowRank:
    """Best rank-`rank` factors of Σ_j w_j ΔW_j for one target key, in canonical form."""
    U, S, Vh = core_svd(packed, w, ranks, rank)
    root = S.sqrt()
    B = scratch.matmul(packed["QB"], U * root)
    A = scratch.matmul(packed["QA"], Vh.T * root).T
    return _finish(B, A.contiguous(), rank)


def target_anchors(packed: dict[str, torch.Tensor], ranks: list[int]) -> list[LowRank]:
    """The target anchors' own factors of one key, rebuilt from the bases (B_j A_j exactly as
    packed), for methods that use the anchors themselves (spanfit)."""
    B = packed["QB"].float() @ packed["RB"]
    A = (packed["QA"].float() @ packed["RA"]).T
    out, start = [], 0
    for r in ranks:
        out.append(LowRank(B[:, start : start + r].contiguous(), A[start : start + r].contiguous()))
        start += r
    return out
