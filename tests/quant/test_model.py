"""quantize_model on tiny real architectures: the projections change, the rest and the adapter do not,
and a module a scheme cannot handle leaves the model as it was."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM

from loraport.quant import QuantError, collect_inputs, linear_names, quantize_model


def _batches(n: int = 2, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(3, 256, (2, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 9:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_round_to_nearest_changes_only_the_projections(tiny_models):
    model = _load(tiny_models["llama"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = quantize_model(model, "int8_sym_row")
    names = linear_names(model)
    assert set(report) == set(names) and len(names) == 7 * 3
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"{n}.weight" for n in names}
    assert all(0 < s.weight_error < 0.01 and s.output_error is None for s in report.values())


def test_calibrated_schemes_use_collected_inputs(tiny_models):
    model = _load(tiny_models["qwen2"])
    x = collect_inputs(model, _batches(), rows=16)
    name = "model.layers.1.mlp.down_proj"
    assert x[name].shape == (16, 128)  # 2 batches × 21 unpadded positions, thinned to 16
    rtn = quantize_model(_load(tiny_models["qwen2"]), "int4_asym_row", calibration=x)
    gptq = quantize_model(model, "gptq_lite", calibration=x)
    assert sum(s.output_error for s in gptq.values()) < sum(s.output_error for s in rtn.values())


def test_adapter_stays_full_precision(tiny_models):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_load(tiny_models["llama"]), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    lora = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}
    base_q = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.clone()
    quantize_model(model, "gguf_q8_0")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in lora.items())
    assert not torch.equal(base_q, model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight)


def test_a_module_the_scheme_cannot_handle_leaves_the_model_untouched(tiny_models):
    model = _load(tiny_models["gemma3"])  # hidden size 80: not a whole number of GGUF blocks
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        QuantError, match=re.escape("GGUF Q4_0: model.layers.0.self_attn.q_proj has rows of 80")
    ):
        quantize_model(model, "gguf_q4_0")
    with pytest.raises(QuantError, match=re.escape("needs calibration inputs for model.layers.0")):
        quantize_model(model, "awq_lite")
    with pytest.raises(QuantError, match=re.escape("has no module 'model.layers.9.mlp.up_proj'")):
        quantize_model(model, "int8_sym_row", modules=["model.layers.9.mlp.up_proj"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
