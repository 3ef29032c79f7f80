"""Quantizers against hand-computed examples; AWQ-lite and GPTQ-lite against plain rounding on their
own objective; GGUF Q8_0/Q4_0 through the gguf package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loraport.quant import (
    QUANTIZERS,
    STUDY_SCHEMES,
    QuantError,
    Uniform,
    awq_lite,
    get_quantizer,
    gptq_lite,
    output_error,
    quantize_uniform,
    uniform_params,
)
from loraport.quant.uniform import apply_params

W = torch.tensor([[0.62, -1.4], [0.33, 0.13]])


def test_symmetric_per_tensor_by_hand():
    # s = 1.4/7 = 0.2; w/s = 3.1, −7, 1.65, 0.65 → 3, −7, 2, 1
    assert torch.allclose(quantize_uniform(W, 4, True, False), torch.tensor([[0.6, -1.4], [0.4, 0.2]]))


def test_symmetric_per_row_by_hand():
    # row 1: s = 0.33/7; 0.13/s = 2.76 → 3
    want = torch.tensor([[0.6, -1.4], [0.33, 3 * 0.33 / 7]])
    assert torch.allclose(quantize_uniform(W, 4, True, True), want)


def test_asymmetric_per_tensor_by_hand():
    # s = (0.62 + 1.4)/15, z = round(1.4/s) = round(10.40) = 10; round(w/s) = 5, −10, 2, 1
    s = 2.02 / 15
    want = torch.tensor([[5 * s, -10 * s], [2 * s, 1 * s]])
    p = uniform_params(W, 4, False, False)
    assert float(p.zero) == 10 and float(p.scale) == pytest.approx(s)
    assert torch.allclose(quantize_uniform(W, 4, False, False), want)


def test_asymmetric_per_row_by_hand():
    # row 1: s = 0.2/15, z = round(−0.13/s) = round(−9.75) = −10; round(w/s) = 25, 10 → q = 15, 0
    s0, s1 = 2.02 / 15, 0.2 / 15
    want = torch.tensor([[5 * s0, -10 * s0], [25 * s1, 10 * s1]])
    assert torch.allclose(quantize_uniform(W, 4, False, True), want)


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_row", [True, False])
def test_uniform_error_is_at_most_half_a_step_and_on_the_grid(bits, symmetric, per_row):
    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(bits))
    p = uniform_params(w, bits, symmetric, per_row)
    w_hat = apply_params(w, p)
    assert bool(((w_hat - w).abs() <= p.scale / 2 + 1e-6).all())
    assert torch.allclose(apply_params(w_hat, p), w_hat, atol=1e-6)  # idempotent
    levels = 2**bits
    for row in w_hat if per_row else [w_hat.flatten()]:
        assert len(torch.unique(row)) <= levels
    if symmetric:
        assert float(quantize_uniform(torch.zeros(2, 3), bits, True, per_row).abs().sum()) == 0.0


def test_more_bits_less_error():
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
    errs = [float((quantize_uniform(w, b, False, True) - w).norm()) for b in (4, 6, 8)]
    assert errs[0] > errs[1] > errs[2]


def test_constant_rows_come_back_exactly():
    w = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    for sym in (True, False):
        assert torch.allclose(quantize_uniform(w, 4, sym, True), w)


def _calibration(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A weight and inputs with correlated features and a few salient channels (as in LLMs)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(48, 96, generator=g)
    x = torch.randn(300, 12, generator=g) @ torch.randn(12, 96, generator=g)
    x = x + 0.1 * torch.randn(300, 96, generator=g)
    x[:, :3] *= 25
    return w, x


@pytest.mark.parametrize("base", [Uniform(4, False, True), Uniform(4, True, False)])
def test_awq_lite_not_worse_than_rounding_on_its_objective(base):
    w, x = _calibration()
    rtn, awq = output_error(base.quantize(w), w, x), output_error(awq_lite(w, x, base), w, x)
    assert awq <= rtn
    assert awq < 0.8 * rtn  # the salient channels make the scaling worth it


@pytest.mark.parametrize("base", [Uniform(4, False, True), Uniform(4, True, False)])
def test_gptq_lite_not_worse_than_rounding_on_its_objective(base):
    w, x = _calibration(1)
    rtn, gptq = output_error(base.quantize(w), w, x), output_error(gptq_lite(w, x, base), w, x)
    assert gptq < 0.5 * rtn


def test_gptq_lite_stays_on_the_original_grid_and_blocks_change_nothing():
    w, x = _calibration(2)
    base = Uniform(4, False, True)
    q = gptq_lite(w, x, base)
    assert torch.allclose(apply_params(q, base.params(w)), q, atol=1e-6)
    for block in (1, 7):
        assert torch.allclose(gptq_lite(w, x, base, block=block), q, atol=1e-4)


def test_gptq_lite_zeroes_dead_inputs():
    w, x = _calibration(3)
    x[:, 5] = 0.0
    assert float(gptq_lite(w, x, Uniform(8, True, True))[:, 5].abs().sum()) == 0.0


def test_gguf_q8_0_by_hand_and_round_trip():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 64, generator=g)
    w_hat = get_quantizer("gguf_q8_0").quantize(w)
    block = w[0, :32].numpy()
    d = np.abs(block).max() / 127  # q from the exact scale; the scale is stored in fp16
    assert np.allclose(w_hat[0, :32].numpy(), np.round(block / d) * np.float32(np.float16(d)), atol=1e-6)
    assert float((w_hat - w).norm() / w.norm()) < 0.01
    for name in ("gguf_q8_0", "gguf_q4_0"):
        q = get_quantizer(name)
        once = q.quantize(w)
        assert torch.allclose(q.quantize(once), once, atol=1e-6)  # already on the grid
    q4 = float((get_quantizer("gguf_q4_0").quantize(w) - w).norm() / w.norm())
    assert 0.01 < q4 < 0.2


def test_gguf_refuses_rows_off_its_block():
    with pytest.raises(QuantError, match="rows of 80 weights, not a multiple of its 32-weight block"):
        get_quantizer("gguf_q4_0").quantize(torch.zeros(4, 80))


def test_registry_names_and_misses():
    assert set(STUDY_SCHEMES) <= set(QUANTIZERS.names())
    uniform = [n for n in STUDY_SCHEMES if n.startswith("int")]
    assert len(uniform) == 7
    assert {n.split("_")[0] for n in uniform} == {"int4", "int6", "int8"}
    assert {n.split("_")[1] for n in uniform} == {"sym", "asym"}
    assert {n.split("_")[2] for n in uniform} == {"tensor", "row"}
    with pytest.raises(
        QuantError, match=r"unknown quantization scheme 'gptq' \(did you mean 'gptq_lite'\?\)"
    ):
        get_quantizer("gptq")
    for name in ("awq_lite", "gptq_lite"):
        with pytest.raises(QuantError, match="needs calibration inputs"):
            get_quantizer(name).quantize(torch.zeros(2, 4))
