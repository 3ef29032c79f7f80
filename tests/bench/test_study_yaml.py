"""Study.to_yaml: load → dump → load is the identity, for every shipped study and one with every
field set, and the reloaded study plans the same cells."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from loraport.bench.plan import make_plan
from loraport.bench.spec import load_study

STUDIES = Path(str(resources.files("loraport.bench").joinpath("studies")))


@pytest.fixture(autouse=True)
def _keep_task_registry(monkeypatch):
    """Loading a study registers its few-shot task variants (math_add@2shot, ...) in TASKS; undo
    that after each test so later tests see the registry they expect."""
    from loraport.tasks.base import TASKS

    monkeypatch.setattr(TASKS, "_items", dict(TASKS._items))


def _round_trip(study, tmp_path):
    path = tmp_path / "again.yaml"
    text = study.to_yaml(path)
    again = load_study(path)
    assert again == study
    assert again.to_yaml() == text
    return again


@pytest.mark.parametrize("name", sorted(p.stem for p in STUDIES.glob("*.yaml")))
def test_shipped_studies_round_trip(name, tmp_path):
    study = load_study(STUDIES / f"{name}.yaml")
    again = _round_trip(study, tmp_path)
    fps = {study.source: "fp-x", study.target: "fp-y"}
    fps.update({b: f"fp-{b}" for b in study.bases() if b not in fps})  # a tiers study's other tiers
    a, b = make_plan(study, fps), make_plan(again, fps)
    assert list(a.cells) == list(b.cells) and a.conditions == b.conditions


def test_every_field_round_trips(tmp_path):
    src = tmp_path / "s.yaml"
    src.write_text(
        "name: every\nsource: a\ntarget: b\n"
        "anchors: [math_add, math_mul, code_affine, sci_context]\n"
        "heldout: [math_sum_more, sci_which]\n"
        "methods: {mean: {}, topk_global_ridge: {k: [2, 3], ridge: auto}, distill: {init: align, steps: 5}}\n"
        "n_anchors: [2, 3]\nseeds: [0, 4]\n"
        "pools: {all: all, math: math, two: [math_add, code_affine]}\n"
        "recipe: {rank: 4, alpha: 8}\neval: {n: 20, seed: 3}\n"
        "scorers: {sci_which: loglik_choice}\nusable_threshold: 0.1\n"
        "controls: {shuffled: true, random: mean}\nchat_template: none\n"
    )
    study = load_study(src)
    again = _round_trip(study, tmp_path)
    assert again.pools["math"] == ["math_add", "math_mul"]
    assert again.methods["topk_global_ridge"] == {"k": [2, 3], "ridge": "auto"}
