"""Ported folders load in PEFT on the real target architectures, reproduce ΔW there, and change logits."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from tests.conftest import make_anchor_set
from transformers import AutoModelForCausalLM

from loraport.adapters import load_adapter
from loraport.models import load_config
from loraport.port import apply_map, fit_map, load_anchors

PAIRS = [("qwen2", "llama"), ("llama", "gemma3"), ("gemma3", "qwen2"), ("qwen2", "phi3"), ("phi3", "llama")]


@pytest.mark.parametrize("src,tgt", PAIRS)
def test_port_loads_in_peft_and_changes_logits(tiny_models, tmp_path, src, tgt):
    anchors = make_anchor_set(tmp_path, tiny_models[src], tiny_models[tgt], 4, rank=4)
    spec = load_anchors(anchors)
    fm = fit_map(spec, "pertensor_ridge", load_config(spec.source_base), load_config(spec.target_base))
    out = apply_map(fm, tmp_path / "x" / "held", tmp_path / "ported")
    ours = load_adapter(out)

    base = AutoModelForCausalLM.from_pretrained(tiny_models[tgt], dtype=torch.float32).eval()
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = base(ids).logits.clone()
    model = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        after = model(ids).logits

    # PEFT's own ΔW for every adapted module equals the ΔW loraport wrote (scaling included).
    seen = 0
    for name, mod in model.named_modules():
        if hasattr(mod, "get_delta_weight") and "default" in getattr(mod, "lora_A", {}):
            key = name.removeprefix("base_model.model.")
            assert torch.allclose(mod.get_delta_weight("default"), ours.delta(key), atol=1e-6)
            seen += 1
    assert seen == len(ours.modules) > 0
    assert (after - before).abs().max() > 1e-4
