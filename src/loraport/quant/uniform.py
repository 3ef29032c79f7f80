"""Uniform integer fake-quantization (quantize, then dequantize) of a weight matrix W (out × in).

    w_hat = quantize_uniform(w, bits=4, symmetric=True, per_row=True)

symmetric:  s = max|w| / (2^(b−1) − 1);  q = clamp(round(w/s), −2^(b−1), 2^(b−1) − 1);  ŵ = s·q
asymmetric: s = (max − min) / (2^b − 1); z = round(−min/s); q = clamp(round(w/s) + z, 0, 2^b − 1);
            ŵ = s·(q − z)
per-tensor: one (s, z) for the whole matrix; per-row: one per output channel (row of W).

Rounding is torch's (half to even). A range of zero width (an all-zero or constant row) takes
s = max|w| (or 1 when that is zero too), so such a row comes back exactly. Computed in float32: the
rounding grid, not the arithmetic, dominates the error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loraport.errors import LoraportError


class QuantError(LoraportError):
    """Unknown quantization scheme, a module a scheme cannot handle, or missing calibration data."""


BITS = (4, 6, 8)


@dataclass(frozen=True)
class UniformParams:
    """Scale and zero point of a uniform quantizer, shaped to broadcast against W (scalar or out×1)."""

    scale: torch.Tensor
    zero: torch.Tensor  # all zeros for symmetric quantizers
    bits: int
    symmetric: bool


def uniform_params(w: torch.Tensor, bits: int, symmetric: bool, per_row: bool) -> UniformParams:
    """The (s, z) of the formulas above for `w` (out × in), per tensor or per output row."""
    if bits < 2 or bits > 16:
        raise QuantError(f"bits={bits} is out of range: 2..16")
    w = w.float()
    dims = (1,) if per_row else (0, 1)
    if w.dim() != 2:
        raise QuantError(f"uniform quantizers take a 2-D weight, got shape {tuple(w.shape)}")
    hi = w.amax(dim=dims, keepdim=True)
    lo = w.amin(dim=dims, keepdim=True)
    span = torch.maximum(hi.abs(), lo.abs())
    fallback = torch.where(span > 0, span, torch.ones_like(span))
    if symmetric:
        scale = span / (2 ** (bits - 1) - 1)
        scale = torch.where(scale > 0, scale, fallback)
        zero = torch.zeros_like(scale)
    else:
        scale = (hi - lo) / (2**bits - 1)
        scale = torch.where(scale > 0, scale, fallback)
        zero = torch.round(-lo / scale)
    return UniformParams(scale, zero, bits, symmetric)


def apply_params(w: torch.Tensor, p: UniformParams) -> torch.Tensor:
    """ŵ for `w` on the grid of `p` (any columns of the matrix `p` was computed from)."""
    # one fresh tensor, then in place: a 8192×3072 weight is 100 MB per temporary
    q = torch.div(w.float(), p.scale).round_()
    if p.symmetric:
        return q.clamp_(-(2 ** (p.bits - 1)), 2 ** (p.bits - 1) - 1).mul_(p.scale)
    return q.add_(p.zero).clamp_(0, 2**p.bits - 1).sub_(p.zero).mul_(p.scale)


def quantize_uniform(w: torch.Tensor, bits: int, symmetric: bool, per_row: bool) -> torch.Tensor:
    """Fake-quantized copy of `w` (float32, same shape)."""
    return apply_params(w, uniform_params(w, bits, symmetric, per_row))


@dataclass(frozen=True)
class Uniform:
    """A plain round-to-nearest scheme: `bits`, symmetric or asymmetric, per tensor or per row."""

    bits: int
    symmetric: bool
    per_row: bool
    calibrated = False

    @property
    def label(self) -> str:
        kind = "sym" if self.symmetric else "asym"
        return f"int{self.bits} {kind} per-{'row' if self.per_row else 'tensor'}"

    def params(self, w: torch.Tensor) -> UniformParams:
        return uniform_params(w, self.bits, self.symmetric, self.per_row)

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        if len(shape) != 2:
            raise QuantError(f"{self.label}: {name} has shape {tuple(shape)}, not a 2-D weight")

    def quantize(self, w: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """ŵ for `w`; `x` (calibration inputs) is ignored: round to nearest needs no data."""
        return quantize_uniform(w, self.bits, self.symmetric, self.per_row)


def uniform_name(bits: int, symmetric: bool, per_row: bool) -> str:
    """Registry name of a uniform scheme: int4_sym_row, int8_asym_tensor, ..."""
    return f"int{bits}_{'sym' if symmetric else 'asym'}_{'row' if per_row else 'tensor'}"
