"""Quantized bases: fake-quantize a model's linear weights with a named scheme, adapters untouched.

    from loraport.quant import QUANTIZERS, calibration_batches, collect_inputs, quantize_model

    model, tok, _ = load_model("tiny-llama-y")
    quantize_model(model, "int8_sym_row")                         # round to nearest, no data
    x = collect_inputs(model, calibration_batches(tok, texts))    # for the calibrated schemes
    quantize_model(model, "awq_lite", calibration=x)

Schemes (`QUANTIZERS.names()`): uniform int4/int6/int8 × sym/asym × per-tensor/per-row, AWQ-lite and
GPTQ-lite (`calibrated`), GGUF Q8_0/Q4_0 through the `gguf` package (`schemes`).
"""

from loraport.quant.calibrated import awq_lite, gptq_lite, output_error
from loraport.quant.model import (
    QuantStats,
    calibration_batches,
    collect_inputs,
    linear_names,
    quantize_model,
)
from loraport.quant.schemes import QUANTIZERS, STUDY_SCHEMES, Gguf, Quantizer, get_quantizer
from loraport.quant.uniform import QuantError, Uniform, quantize_uniform, uniform_params

__all__ = [
    "QUANTIZERS",
    "STUDY_SCHEMES",
    "Gguf",
    "QuantError",
    "QuantStats",
    "Quantizer",
    "Uniform",
    "awq_lite",
    "calibration_batches",
    "collect_inputs",
    "get_quantizer",
    "gptq_lite",
    "linear_names",
    "output_error",
    "quantize_model",
    "quantize_uniform",
    "uniform_params",
]
