import pytest
from transformers import Gemma3TextConfig, LlamaConfig, Phi3Config, Qwen2Config

from loraport.arch import arch_for, families, layer_map
from loraport.errors import ArchError


def test_every_required_family_has_a_file():
    have = set(families())
    assert {"llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3", "phi3"} <= have


def test_gqa_shapes_follow_from_config():
    # Qwen2.5-3B: hidden 2048, 16 query / 2 KV heads, head_dim 128
    a = arch_for(
        Qwen2Config(
            hidden_size=2048,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            intermediate_size=11008,
        )
    )
    shapes = {m.local: m.shape for m in a.modules()[:7]}
    assert shapes["self_attn.k_proj"] == (256, 2048)
    assert shapes["self_attn.q_proj"] == (2048, 2048)
    assert shapes["mlp.down_proj"] == (2048, 11008)
    assert a.num_layers == 36 and len(a.modules()) == 36 * 7


def test_explicit_head_dim_gemma3():
    a = arch_for(
        Gemma3TextConfig(
            hidden_size=640,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            intermediate_size=2048,
        )
    )
    info = a.parse("model.layers.17.self_attn.o_proj")
    assert info.shape == (640, 1024) and info.in_space == "attn_v_heads"
    assert a.parse("model.layers.18.self_attn.o_proj") is None  # past the last layer


def test_fused_phi3_parts_cover_rows():
    a = arch_for(
        Phi3Config(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=96,
        )
    )
    qkv = a.parse("model.layers.0.self_attn.qkv_proj")
    assert qkv.roles == ("q", "k", "v")
    assert [(p.start, p.stop) for p in qkv.parts] == [(0, 64), (64, 96), (96, 128)]
    assert a.parse("model.layers.1.mlp.gate_up_proj").roles == ("gate", "up")


def test_unknown_model_type_suggests():
    with pytest.raises(ArchError, match="did you mean 'llama'"):
        arch_for(
            LlamaConfig.from_dict({"model_type": "lama"})
            if False
            else type("C", (), {"model_type": "lama"})()
        )


@pytest.mark.parametrize("ns,nt", [(36, 28), (28, 36), (4, 4), (5, 1), (1, 3)])
def test_relative_layer_map_is_monotone_and_covers_ends(ns, nt):
    m = layer_map(ns, nt)
    assert len(m) == nt and m == sorted(m)
    assert m[0] == 0 and (nt == 1 or m[-1] == ns - 1)


def test_unknown_layer_map():
    with pytest.raises(ArchError, match="unknown layer map"):
        layer_map(3, 3, "cka_magic")
