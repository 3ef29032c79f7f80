"""Eval cells on a quantized base (bench.quant_eval): the adapter is merged in full precision onto
the fake-quantized weights, and calibration never uses scored items."""

from __future__ import annotations

import pytest
import torch

from loraport.adapters import load_adapter
from loraport.adapters.synthetic import synthetic_adapter
from loraport.bench import quant_eval
from loraport.errors import LoraportError
from loraport.models import load_config, load_model
from loraport.quant import get_quantizer


def test_the_adapter_is_added_in_full_precision_to_the_quantized_weights(tiny_models, tmp_path):
    base = tiny_models["llama"]
    folder = synthetic_adapter(load_config(str(base)), tmp_path / "ad", rank=4, seed=3, base_model=str(base))
    ad = load_adapter(folder)
    model, _, _ = load_model(str(base))
    before = {m: model.get_submodule(m).weight.detach().clone() for m in ad.modules}
    stats, prov = quant_eval.quantize_and_merge(model, "int4_sym_row", folder)
    assert prov is not None and set(ad.modules) <= set(stats)
    q = get_quantizer("int4_sym_row")
    for m in ad.modules:
        want = q.quantize(before[m].float()) + ad.delta(m).float()
        torch.testing.assert_close(model.get_submodule(m).weight.detach().float(), want, atol=1e-5, rtol=1e-5)


def test_calibration_that_overlaps_the_eval_items_is_a_one_line_error():
    texts = quant_eval.calibration_texts("math_sum_more", 8, 0, eval_n=12, eval_seed=0)
    assert len(texts) == 8

    class Clash:  # a task whose train split hands out the eval items
        name = "clash"

        def available(self, split):
            return None

        def items(self, split, n, seed=0):
            from loraport.tasks import get_task

            return get_task("math_sum_more").items("eval", n, seed=0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("loraport.tasks.resolve_task", lambda name: Clash())
        with pytest.raises(
            LoraportError, match=r"calibration data for clash: train item .* is also an eval item"
        ) as e:
            quant_eval.calibration_texts("clash", 8, 0, eval_n=12, eval_seed=0)
    assert "\n" not in str(e.value)
