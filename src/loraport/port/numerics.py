"""Pure N×N linear algebra behind the anchor methods (no I/O, float64 throughout).

Every anchor method predicts the target adapter as a weighted sum of the N target anchors,
ŷ = Σ_j w_j·y_j; the methods differ only in how w is computed from the Gram matrix K of the source
anchors and the kernel vector k(x)_j = ⟨x, x_j⟩ of the input. All fit an intercept: they regress
centred adapters (x − x̄ → y − ȳ), so an input equal to the source anchor mean maps to the target
anchor mean, and the weights always sum to one.

Linear methods reduce to one matrix T: c = T·k̃(x), w = 1/N + c − mean(c), where
k̃(x) = H(k(x) − K·1/N) is the centred kernel (H = I − 11ᵀ/N).
"""

from __future__ import annotations

import torch

RIDGE_GRID = tuple(10.0**e for e in range(-4, 3))  # relative penalties tried by leave-one-out


def centering(n: int) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64) - 1.0 / n


def centred_kernel(K: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return centering(len(K)) @ (k - K.mean(1))


def weights_from_coeffs(c: torch.Tensor) -> torch.Tensor:
    return 1.0 / len(c) + c - c.mean()


def eig_pos(K: torch.Tensor, p: int | None = None, tol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive eigenpairs of a symmetric PSD matrix, largest first, at most p of them."""
    evals, evecs = torch.linalg.eigh(K)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order], evecs[:, order]
    keep = evals > tol * max(float(evals[0]), 1e-300)
    evals, evecs = evals[keep], evecs[:, keep]
    if p is not None:
        evals, evecs = evals[:p], evecs[:, :p]
    return evals, evecs


def ridge_T(K: torch.Tensor, lam_rel: float) -> torch.Tensor:
    """Kernel ridge in dual form: T = (K̃ + λI)⁻¹ with λ = lam_rel · trace(K̃)/N.

    Scaling λ by the mean eigenvalue of the centred Gram makes the penalty independent of adapter
    norms and model size, so one default serves 1M-parameter test models and 3B models alike.
    """
    n = len(K)
    H = centering(n)
    Kc = H @ K @ H
    lam = lam_rel * max(float(torch.trace(Kc)) / n, 1e-300)
    return torch.linalg.solve(Kc + lam * torch.eye(n, dtype=K.dtype), torch.eye(n, dtype=K.dtype))


def linear_weights(T: torch.Tensor, K: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return weights_from_coeffs(T @ centred_kernel(K, k))


def loo_error(K: torch.Tensor, Ky: torch.Tensor, lam_rel: float) -> float:
    """Σ_i ‖y_i − ŷ_{−i}‖² for ridge fitted without anchor i (exact, N small), measured in ΔW
    Frobenius norm through the target Gram Ky. The N refits are one batched solve (a per-tensor
    method chooses a penalty for each of ~200 tensors at fit time, and Top-K at each port)."""
    n = len(K)
    if n < 3:
        return float("nan")
    m = n - 1
    idx = torch.tensor([[j for j in range(n) if j != i] for i in range(n)])  # (n, m)
    Ks = K[idx[:, :, None], idx[:, None, :]]  # (n, m, m): the Gram without anchor i
    H = centering(m)
    Kc = H @ Ks @ H
    lam = lam_rel * (torch.diagonal(Kc, dim1=1, dim2=2).sum(1) / m).clamp_min(1e-300)
    eye = torch.eye(m, dtype=K.dtype)
    k = K[idx, torch.arange(n)[:, None]]  # (n, m): kernel of the left-out anchor
    kc = (k - Ks.mean(2)) @ H  # centred kernels (H is symmetric)
    c = torch.linalg.solve(Kc + lam[:, None, None] * eye, kc.unsqueeze(2)).squeeze(2)
    w = 1.0 / m + c - c.mean(1, keepdim=True)
    C = torch.eye(n, dtype=K.dtype).scatter_add(1, idx, -w)  # row i: e_i − ŷ_{−i}'s weights
    return float(((C @ Ky) * C).sum())


def choose_ridge(K: torch.Tensor, Ky: torch.Tensor, grid: tuple[float, ...] = RIDGE_GRID) -> float:
    """Relative ridge penalty minimising leave-one-out error over the anchors; ties go to the
    larger (safer) penalty. With fewer than 3 anchors LOO is undefined and 1.0 is used."""
    if len(K) < 3:
        return 1.0
    errs = [(loo_error(K, Ky, lam), -lam) for lam in grid]
    return -min(errs)[1]


def procrustes_T(Kx: torch.Tensor, Ky: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Orthogonal (optionally scaled) Procrustes between the centred anchor clouds, in coordinates
    of their own principal axes: Z_x = V_xΛ_x^½, Z_y = V_yΛ_y^½, Q = UVᵀ from svd(Z_yᵀZ_x)."""
    H = centering(len(Kx))
    lx, vx = eig_pos(H @ Kx @ H)
    ly, vy = eig_pos(H @ Ky @ H)
    zx, zy = vx * lx.sqrt(), vy * ly.sqrt()
    U, S, Vh = torch.linalg.svd(zy.T @ zx, full_matrices=False)
    Q = U @ Vh
    s = float(S.sum()) / float((zx**2).sum()) if scale else 1.0
    return (vy / ly.sqrt()) @ (s * Q) @ (vx / lx.sqrt()).T


def pca_T(Kx: torch.Tensor, Ky: torch.Tensor, components: int, lam_rel: float = 1e-3) -> torch.Tensor:
    """PCA of both anchor clouds (top `components` axes each), ridge map between the coordinates."""
    H = centering(len(Kx))
    lx, vx = eig_pos(H @ Kx @ H, components)
    ly, vy = eig_pos(H @ Ky @ H, components)
    zx, zy = vx * lx.sqrt(), vy * ly.sqrt()
    g = zx.T @ zx
    lam = lam_rel * float(torch.trace(g)) / max(len(g), 1)
    M = torch.linalg.solve(g + lam * torch.eye(len(g), dtype=g.dtype), zx.T @ zy)
    return (vy / ly.sqrt()) @ M.T @ (vx / lx.sqrt()).T


def cosine(K: torch.Tensor, k: torch.Tensor, kxx: float) -> torch.Tensor:
    """Cosine similarity of the input to each anchor from kernels alone."""
    return k / (torch.sqrt(torch.clamp(K.diagonal(), min=1e-300)) * max(kxx, 1e-300) ** 0.5)
