"""Calibrated quantizers: the smallest faithful AWQ and GPTQ (see notes/quantization_and_diagnostics).

    w_hat = awq_lite(w, x, Uniform(4, False, True))    # x: (N × in) inputs the linear saw
    w_hat = gptq_lite(w, x, Uniform(4, False, True))

Both minimise the output error ‖(Ŵ − W)Xᵀ‖²_F on calibration inputs X rather than ‖Ŵ − W‖, and both
only need the linear's own inputs (forward passes, no gradients).

AWQ-lite: s_x = mean|X| per input channel; for α in {0, 1/grid, …, (grid−1)/grid}: s = s_x^α
normalised by √(max s · min s), Ŵ = Q(W·diag(s))·diag(s)⁻¹; keep the α with the least output error.
α = 0 is plain rounding, so AWQ-lite is never worse than it on this objective. Left out of the full
method: the per-channel clip search and scaling groups of linears that share an input.

GPTQ-lite: H = (2/N)·XᵀX, damped by 0.01·mean(diag H)·I; dead inputs (H_ii = 0) get H_ii = 1 and
a zero column. U = upper Cholesky factor of H⁻¹. Column by column: q_i = Q(w_i) on the grid of the
original W; err = (w_i − q_i)/U_ii; W[:, i+1:] −= err ⊗ U[i, i+1:]. The updates are applied lazily in
blocks of 128 columns (the same arithmetic, done as one matrix product per block). Left out: the
activation-order permutation and sequential layer-by-layer calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loraport.quant.uniform import QuantError, Uniform, UniformParams, apply_params

AWQ_GRID = 20
GPTQ_DAMP = 0.01
GPTQ_BLOCK = 128


def _rows(x: torch.Tensor, width: int, what: str) -> torch.Tensor:
    x = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x[None]
    if x.shape[-1] != width:
        raise QuantError(f"{what}: calibration inputs have {x.shape[-1]} features, the weight {width}")
    if len(x) == 0:
        raise QuantError(f"{what}: no calibration inputs")
    return x.float()


def output_error(w_hat: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> float:
    """‖(Ŵ − W)Xᵀ‖²_F for inputs X (N × in), through the in×in Gram when N > in (cheaper). The
    product is float32 (an 8192×3072 weight against 512 rows is 13 GFLOP), the sum float64."""
    d = w_hat.float() - w.float()
    x = _rows(x, w.shape[1], "output error")
    if len(x) > x.shape[1]:
        return float(((d @ (x.T @ x)) * d).double().sum())
    return float((d @ x.T).double().pow(2).sum())


def awq_lite(w: torch.Tensor, x: torch.Tensor, quant: Uniform, grid: int = AWQ_GRID) -> torch.Tensor:
    """Activation-aware scaling search around `quant` (see the module docstring)."""
    w = w.float()
    x = _rows(x, w.shape[1], "awq_lite")
    sx = x.abs().mean(0)
    # channels that never fire would get s = 0 (and 1/s = inf): floor them at a tiny share of the largest
    sx = sx.clamp_min(1e-6 * float(sx.max().clamp_min(1e-30)))
    best, best_err = quant.quantize(w), None
    for k in range(grid):
        s = sx ** (k / grid)
        s = s / torch.sqrt(s.max() * s.min())
        w_hat = quant.quantize(w * s).div_(s)
        err = output_error(w_hat, w, x)
        if best_err is None or err < best_err:
            best, best_err = w_hat, err
    return best


def gptq_lite(
    w: torch.Tensor, x: torch.Tensor, quant: Uniform, damp: float = GPTQ_DAMP, block: int = GPTQ_BLOCK
) -> torch.Tensor:
    """Hessian-aware rounding with error feedback (see the module docstring)."""
    W = w.float().clone()
    n_in = W.shape[1]
    x = _rows(x, n_in, "gptq_lite").double()
    # float64 for H and its factors: H = XᵀX of activations with outliers is badly conditioned
    H = (2.0 / len(x)) * (x.T @ x)
    dead = H.diagonal() == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * float(H.diagonal().mean()) * torch.eye(n_in, dtype=H.dtype)
    U = _upper_cholesky_of_inverse(H).float()
    p = quant.params(w)  # the grid comes from the original W
    pt = UniformParams(p.scale.T, p.zero.T, p.bits, p.symmetric)  # for rows of Wᵀ
    # Work on Wᵀ, so that each column of W (the unit of the loop) is one contiguous row.
    Wt = W.T.contiguous()
    Qt = torch.empty_like(Wt)
    for b0 in range(0, n_in, block):
        b1 = min(b0 + block, n_in)
        blk = Wt[b0:b1]
        err = torch.empty_like(blk)
        for j in range(b1 - b0):
            row = blk[j : j + 1]
            q = apply_params(row, pt)
            Qt[b0 + j] = q[0]
            e = (row - q) / U[b0 + j, b0 + j]
            blk[j + 1 :] -= U[b0 + j, b0 + j + 1 : b1, None] * e
            err[j] = e[0]
        Wt[b1:] -= U[b0:b1, b1:].T @ err
    return Qt.T.contiguous()


def _upper_cholesky_of_inverse(H: torch.Tensor) -> torch.Tensor:
    """U upper triangular with UᵀU = H⁻¹, without forming H⁻¹: with P the order reversal and
    PHP = L̃L̃ᵀ, U = P·L̃⁻¹·P (a lower triangle reversed both ways is upper), since
    UᵀU = P L̃⁻ᵀ L̃⁻¹ P = P (PHP)⁻¹ P = H⁻¹."""
    L = torch.linalg.cholesky(H.flip(0, 1))
    eye = torch.eye(len(H), dtype=H.dtype)
    return torch.linalg.solve_triangular(L, eye, upper=False).flip(0, 1)


@dataclass(frozen=True)
class Awq:
    """AWQ-lite over a uniform scheme (needs calibration inputs)."""

    base: Uniform
    grid: int = AWQ_GRID
    calibrated = True

    @property
    def label(self) -> str:
        return f"AWQ-lite ({self.base.label})"

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        self.base.check(name, shape)

    def quantize(self, w: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        if x is None:
            raise QuantError(f"{self.label} needs calibration inputs")
        return awq_lite(w, x, self.base, self.grid)


@dataclass(frozen=True)
class Gptq:
    """GPTQ-lite over a uniform scheme (needs calibration inputs)."""

    base: Uniform
    damp: float = GPTQ_DAMP
    block: int = GPTQ_BLOCK
    calibrated = True

    @property
    def label(self) -> str:
        return f"GPTQ-lite ({self.base.label})"

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        self.base.check(name, shape)

    def quantize(self, w: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        if x is None:
            raise QuantError(f"{self.label} needs calibration inputs")
        return gptq_lite(w, x, self.base, self.damp, self.block)
