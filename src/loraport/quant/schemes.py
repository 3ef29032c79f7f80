"""The quantization schemes by name (one registry), each a configured instance of a few classes.

    get_quantizer("int4_sym_row").quantize(w)          # plain round to nearest
    get_quantizer("gptq_lite").quantize(w, x)          # x: calibration inputs (N × in)
    QUANTIZERS.names()

Names: int{4,6,8}_{sym,asym}_{tensor,row} (every combination; a study picks seven that span them),
awq_lite and gptq_lite (int4, asymmetric, per row, calibrated), gguf_q8_0 and gguf_q4_0.

The GGUF formats are llama.cpp's own, computed by the `gguf` package (`gguf.quants.quantize` then
`dequantize`, maintained with llama.cpp and pure numpy, so it runs on CPU): a maintained library's
quantizer is preferred over a home-made one wherever it exists. Blocks of 32 weights along a row,
each with an fp16 scale: Q8_0 q = round(w/d) with d = max|w|/127, ŵ = fp16(d)·q; Q4_0 d = m/−8 for
the signed m of largest magnitude, q in 0..15 stored with an offset of 8. Rows whose length is not a multiple of 32
cannot be stored in these formats (QuantError). AWQ and GPTQ have no CPU-only maintained library
(AutoAWQ and GPTQModel need CUDA kernels), so loraport carries the small versions in `calibrated`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from loraport.quant.calibrated import Awq, Gptq
from loraport.quant.uniform import BITS, QuantError, Uniform, uniform_name
from loraport.registry import Registry


class Quantizer(Protocol):
    """What every scheme offers: a label, a shape check, fake-quantization of one weight."""

    calibrated: bool

    @property
    def label(self) -> str: ...

    def check(self, name: str, shape: tuple[int, ...]) -> None: ...

    def quantize(self, w: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class Gguf:
    """A GGUF block format through the `gguf` package (imported only when used)."""

    qtype: str  # GGMLQuantizationType member name: Q8_0, Q4_0, ...
    calibrated = False

    @property
    def label(self) -> str:
        return f"GGUF {self.qtype}"

    def _type(self):
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType[self.qtype]

    def block(self) -> int:
        from gguf.constants import GGML_QUANT_SIZES

        return GGML_QUANT_SIZES[self._type()][0]

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        if len(shape) != 2:
            raise QuantError(f"{self.label}: {name} has shape {tuple(shape)}, not a 2-D weight")
        block = self.block()
        if shape[-1] % block:
            raise QuantError(
                f"{self.label}: {name} has rows of {shape[-1]} weights, not a multiple of its "
                f"{block}-weight block"
            )

    def quantize(self, w: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        from gguf import quants

        self.check("weight", tuple(w.shape))
        arr = w.detach().float().cpu().numpy()
        qt = self._type()
        return torch.from_numpy(quants.dequantize(quants.quantize(arr, qt), qt).reshape(arr.shape))


QUANTIZERS: Registry[Quantizer] = Registry("quantization scheme", QuantError)

for _bits in BITS:
    for _sym in (True, False):
        for _row in (False, True):
            QUANTIZERS.add(uniform_name(_bits, _sym, _row), Uniform(_bits, _sym, _row))
QUANTIZERS.add("awq_lite", Awq(Uniform(4, False, True)))
QUANTIZERS.add("gptq_lite", Gptq(Uniform(4, False, True)))
QUANTIZERS.add("gguf_q8_0", Gguf("Q8_0"))
QUANTIZERS.add("gguf_q4_0", Gguf("Q4_0"))

#: Seven schemes that span bits × symmetry × granularity, plus the calibrated and GGUF ones.
STUDY_SCHEMES = (
    "int8_sym_tensor",
    "int8_asym_row",
    "int6_sym_row",
    "int6_asym_tensor",
    "int4_sym_tensor",
    "int4_sym_row",
    "int4_asym_row",
    "awq_lite",
    "gptq_lite",
    "gguf_q8_0",
    "gguf_q4_0",
)


def get_quantizer(name: str) -> Quantizer:
    """The scheme registered as `name`; QuantError naming the closest one otherwise."""
    return QUANTIZERS.get(name)
