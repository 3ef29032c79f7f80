"""Family files: the schema rejects typos naming the file and the field, and every shipped file
declares exactly the nn.Linear projections, with their shapes, of a tiny real model of its family."""

from __future__ import annotations

from importlib import resources

import pytest
import torch

from loraport.arch import arch_for
from loraport.arch.family import ROLES, families, load_family
from loraport.errors import ArchError
from loraport.testing import TINY_FAMILIES, build_tiny_model

FILES = sorted(
    f.name
    for f in resources.files("loraport.arch").joinpath("families").iterdir()
    if f.name.endswith(".yaml")
)


def _text(name: str) -> str:
    return resources.files("loraport.arch").joinpath("families", name).read_text()


def test_every_shipped_file_validates():
    assert len(FILES) == 8
    assert sorted(f"{n}.yaml" for n in families()) == FILES
    for fam in families().values():
        for m in fam.modules:
            roles = [p["role"] for p in m["parts"]] if "parts" in m else [m["role"]]
            assert set(roles) <= set(ROLES)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "in_space: residual",
            "in_spcae: residual",
            "modules.0: unknown field 'in_spcae' (did you mean 'in_space'",
        ),
        ("role: q,", "role: query,", "modules.0.role"),
        ("layer_prefix:", "layer_prefx:", "unknown field 'layer_prefx' (did you mean 'layer_prefix'"),
        ('"model.layers.{layer}."', '"model.layers."', "layer_prefix: must contain the {layer} placeholder"),
        ("out_space: attn_q}", "}", "modules.0: a plain projection needs role and out_space"),
    ],
)
def test_a_typo_names_the_file_and_the_field(old, new, where):
    text = _text("qwen2.yaml")
    assert old in text
    with pytest.raises(ArchError) as e:
        load_family(text.replace(old, new, 1), "qwen2.yaml")
    assert "family file qwen2.yaml" in str(e.value) and where in str(e.value), str(e.value)


def test_a_fused_part_with_an_unknown_role_is_rejected():
    text = _text("phi3.yaml")
    with pytest.raises(ArchError, match=r"phi3.yaml: modules.0.parts.1.role"):
        load_family(text.replace("{role: k, size: kv", "{role: key, size: kv", 1), "phi3.yaml")
    with pytest.raises(ArchError, match=r"modules.0.parts.0: unknown field 'sise'"):
        load_family(text.replace("{role: q, size: q", "{role: q, sise: q", 1), "phi3.yaml")


# GQA (4 query heads, 2 KV heads); an explicit head_dim other than hidden / heads where the family
# reads it from the config (qwen2 and phi3 derive it)
SHAPES = dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96)
EXPLICIT_HEAD_DIM = {"llama", "mistral", "qwen3", "gemma", "gemma2", "gemma3"}


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_declared_shapes_match_a_tiny_real_model(family, tmp_path):
    from transformers import AutoModelForCausalLM

    head_dim = 24 if family in EXPLICIT_HEAD_DIM else None
    path = build_tiny_model(family, tmp_path / family, head_dim=head_dim, **SHAPES)
    model = AutoModelForCausalLM.from_pretrained(path)
    arch = arch_for(model.config)
    assert f"{arch.family.name}.yaml" in FILES
    linear = {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    declared = {m.name: m.shape for m in arch.modules()}
    assert declared, family
    for name, shape in declared.items():
        assert linear.get(name) == shape, (family, name, shape, linear.get(name))
    in_layers = {n for n in linear if arch.parse(n) is not None or ".layers." in n}
    assert in_layers == set(declared), (family, sorted(in_layers ^ set(declared)))


def test_every_family_file_has_a_tiny_model():
    assert set(families()) <= set(TINY_FAMILIES), sorted(set(families()) - set(TINY_FAMILIES))
