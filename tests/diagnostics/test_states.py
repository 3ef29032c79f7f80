"""Hidden-state diagnostics on a tiny real model: CKA and relative change between base and adapted
states, with the base weights restored afterwards."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from loraport.adapters import LowRank
from loraport.diagnostics import adapter_cka, layer_states, merged, state_change
from loraport.errors import AdapterError
from loraport.quant import linear_names


def _batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 256, (4, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 10:] = 0
    return [
        {"input_ids": ids[:2], "attention_mask": mask[:2]},
        {"input_ids": ids[2:], "attention_mask": mask[2:]},
    ]


def _adapter(model, scale: float, rank: int = 4, seed: int = 0) -> dict[str, LowRank]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in linear_names(model):
        w = model.get_submodule(name).weight
        out[name] = LowRank(
            torch.randn(w.shape[0], rank, generator=g) * scale, torch.randn(rank, w.shape[1], generator=g)
        )
    return out


def test_cka_and_change_of_zero_small_and_large_adapters(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    states = layer_states(model, _batches())
    assert len(states) == 3 and states[0].shape == (16 + 16 + 10 + 16, 96)

    zero = _adapter(model, 0.0)
    assert adapter_cka(model, zero, _batches()) == pytest.approx([1.0] * 3, abs=1e-9)
    assert state_change(model, zero, _batches()) == pytest.approx([0.0] * 3, abs=1e-12)
    small, large = _adapter(model, 1e-3), _adapter(model, 0.3)
    c_small, c_large = adapter_cka(model, small, _batches()), adapter_cka(model, large, _batches())
    ch_small, ch_large = state_change(model, small, _batches()), state_change(model, large, _batches())
    assert all(0.99 < c <= 1.0 + 1e-9 for c in c_small)
    assert all(cl < cs for cl, cs in zip(c_large, c_small, strict=True)) and min(c_large) < 0.9
    assert all(0 < a < b for a, b in zip(ch_small, ch_large, strict=True))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_merged_restores_weights_and_checks_shapes(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval()
    name = "model.layers.0.self_attn.q_proj"
    w0 = model.get_submodule(name).weight.clone()
    with merged(model, {name: LowRank(torch.ones(96, 1), torch.ones(1, 96))}):
        assert torch.allclose(model.get_submodule(name).weight, w0 + 1)
    assert torch.equal(model.get_submodule(name).weight, w0)
    with (
        pytest.raises(AdapterError, match=r"ΔW is \(96, 5\)"),
        merged(model, {name: LowRank(torch.ones(96, 1), torch.ones(1, 5))}),
    ):
        pass
    bad = {
        name: LowRank(torch.ones(96, 1), torch.ones(1, 96)),
        "model.layers.7.mlp.up_proj": LowRank(torch.ones(2, 1), torch.ones(1, 2)),
    }
    with pytest.raises(AdapterError, match="no module"), merged(model, bad):
        pass
    assert torch.equal(model.get_submodule(name).weight, w0)
