"""Bad study specs fail before any work, naming file, line and field."""

from __future__ import annotations

import pytest
import yaml

from loraport.bench import StudyError, load_study
from loraport.bench.executors import check_ray_address
from loraport.errors import LoraportError

BASE = {
    "name": "s",
    "source": "tiny-qwen2-x",
    "target": "tiny-llama-y",
    "anchors": ["math_add", "math_sub"],
    "heldout": ["math_sum_more"],
    "methods": {"mean": {}},
    "n_anchors": [2],
}


def write(tmp_path, data, text=None):
    p = tmp_path / "s.yaml"
    p.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return p


def test_shipped_studies_load():
    from importlib import resources

    for name in ("quick.yaml", "wide.yaml", "demo.yaml", "round4_3b.yaml"):
        path = resources.files("loraport.bench").joinpath("studies", name)
        study = load_study(path)
        assert study.heldout and study.methods


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_anchor": [2]}, r"line 13: unknown field 'n_anchor' \(did you mean 'n_anchors'\?\)"),
        ({"heldout": ["math_add"]}, r"held-out task 'math_add' is also an anchor"),
        ({"n_anchors": [3]}, r"n_anchors 3 is outside 1..2"),
        (
            {"methods": {"topk_global_ridge": {"kk": 2}}},
            r"method 'topk_global_ridge' has no option 'kk' \(did you mean 'k'\?\)",
        ),
        ({"methods": {"ridge": {}}}, r"unknown method 'ridge'"),
        ({"recipe": {"rnak": 4}}, r"recipe.rnak: unknown field 'rnak' \(did you mean 'rank'\?\)"),
    ],
)
def test_bad_specs(tmp_path, change, message):
    with pytest.raises(StudyError, match=message):
        load_study(write(tmp_path, BASE | change))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(StudyError, match=r"s.yaml, line 3: invalid YAML"):
        load_study(write(tmp_path, None, "name: s\nsource: x\n  bad: [1,\n"))


def test_unreachable_ray_address():
    with pytest.raises(LoraportError, match=r"ray address '127\.0\.0\.1:1' is unreachable"):
        check_ray_address("127.0.0.1:1")


def test_the_shuffled_source_comes_from_another_domain():
    from loraport.bench.port_study import shuffled_source

    heldout = ["code_cond_arith", "code_paren", "math_sum_more", "sci_context_chain", "sci_context_which"]
    got = {t: shuffled_source(heldout, i) for i, t in enumerate(heldout)}
    assert got == {
        "code_cond_arith": "math_sum_more",  # the next task, code_paren, shares the answer format
        "code_paren": "math_sum_more",
        "math_sum_more": "sci_context_chain",
        "sci_context_chain": "code_cond_arith",  # cyclic, skipping its science sibling
        "sci_context_which": "code_cond_arith",
    }
    assert shuffled_source(["code_paren", "code_cond_arith"], 0) == "code_cond_arith"  # one domain


def test_a_list_of_option_maps_is_the_union_of_their_sweeps(tmp_path):
    data = {
        **BASE,
        "methods": {
            "distill": [
                {"init": ["zero", "global_ridge"], "steps": 200},
                {"init": "global_ridge", "steps": 200, "weighting": "excess"},
                {"init": "global_ridge", "steps": 200},  # already in the first sweep: planned once
            ]
        },
    }
    study = load_study(write(tmp_path, data))
    assert study.method_variants() == [
        ("distill", {"init": "zero", "steps": 200}),
        ("distill", {"init": "global_ridge", "steps": 200}),
        ("distill", {"init": "global_ridge", "steps": 200, "weighting": "excess"}),
    ]


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ({"distill": []}, "an empty list of option maps"),
        ({"distill": [{"init": "zero"}, {"inti": "zero"}]}, "inti"),
    ],
)
def test_a_bad_list_of_option_maps_names_the_method(tmp_path, methods, message):
    with pytest.raises(StudyError, match=message):
        load_study(write(tmp_path, {**BASE, "methods": methods}))
