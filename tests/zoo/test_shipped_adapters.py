"""The shipped source adapters: a study with `source_adapters: shipped` copies the package's LoRAs
(checked by sha256) instead of training them, under keys of their own; a tampered file is a
one-line error; anything that does not match exactly is trained as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loraport.bench.cells import CELL_KINDS
from loraport.bench.plan import Cell, make_plan
from loraport.bench.runner import plan_study
from loraport.bench.spec import load_study
from loraport.bench.store import Store
from loraport.errors import ModelLoadError
from loraport.io import sha256_file
from loraport.zoo import shipped_adapters as sa

STARTER = Path(__file__).parents[2] / "studies" / "starter.yaml"


@pytest.fixture
def adapters_copy(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "shipped_adapters"
    shutil.copytree(sa.ADAPTERS_ROOT, root)
    monkeypatch.setattr(sa, "ADAPTERS_ROOT", root)
    return root


def _starter_plan(mode: str):
    study = load_study(STARTER).model_copy(update={"source_adapters": mode})
    return study, plan_study(study, build=False)


def test_the_starter_copies_its_five_source_adapters_and_trains_everything_on_the_target():
    study, plan = _starter_plan("shipped")
    trains = plan.by_kind("train")
    shipped = [c for c in trains if c.params.get("shipped")]
    assert sorted(c.params["task"] for c in shipped) == sorted([*study.anchors, *study.heldout])
    assert all(c.params["base"] == study.source for c in shipped)
    assert all(not c.params.get("shipped") for c in trains if c.params["base"] == study.target)
    # keyed by the file's bytes, apart from a training of the same recipe here, on any device
    _, trained = _starter_plan("train")
    assert not {c.key for c in shipped} & {c.key for c in trained.by_kind("train")}
    on_gpu = make_plan(study, plan.fingerprints, device="cuda:0")
    assert {c.key for c in shipped} <= set(on_gpu.cells)


def test_only_an_exact_match_of_base_task_and_recipe_is_shipped():
    entry = next(iter(sa.read_manifest().values()))
    assert sa.find_shipped(entry["fingerprint"], entry["task"], entry["recipe"]) is not None
    assert sa.find_shipped(entry["fingerprint"] + "+chat:x", entry["task"], entry["recipe"]) is None
    assert sa.find_shipped(entry["fingerprint"], entry["task"], {**entry["recipe"], "seed": 1}) is None
    study = load_study(STARTER).model_copy(update={"source_adapters": "shipped"})
    other = study.model_copy(update={"recipe": study.recipe.model_copy(update={"epochs": 2})})
    assert not any(c.params.get("shipped") for c in plan_study(other, build=False).cells.values())


def test_a_shipped_cell_is_a_checked_copy_with_its_training_record(tmp_path):
    _, plan = _starter_plan("shipped")
    cell = next(c for c in plan.by_kind("train") if c.params.get("shipped"))
    store = Store(tmp_path / "run")
    CELL_KINDS.get("train").run(cell, store)
    out = store.adapter(cell.key)
    entry = sa.read_manifest()[cell.params["shipped"]]
    assert (
        sha256_file(out / "adapter_model.safetensors")
        == entry["files"]["adapter_model.safetensors"]["sha256"]
    )
    log = json.loads((out / "train_log.json").read_text())
    assert log["shipped"]["name"] == cell.params["shipped"] and log["steps"] == entry["trained_with"]["steps"]
    assert store.has("train", cell.key)


def test_a_tampered_shipped_adapter_is_a_one_line_error_and_writes_nothing(adapters_copy, tmp_path):
    name = next(iter(sa.read_manifest()))
    weights = adapters_copy / name / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(ModelLoadError) as err:
        sa.copy_shipped(name, out)
    msg = str(err.value)
    assert "\n" not in msg and str(weights) in msg and "does not match" in msg
    assert not out.exists()
    other = list(sa.read_manifest())[1]
    (adapters_copy / other / "train_log.json").unlink()
    with pytest.raises(ModelLoadError, match=r"train_log\.json: missing from the shipped adapters"):
        sa.copy_shipped(other, out)
    assert not out.exists()


def test_an_unreadable_manifest_names_its_file(adapters_copy):
    (adapters_copy / sa.MANIFEST).write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"MANIFEST.json: unreadable shipped-adapter manifest"):
        sa.read_manifest()


def test_a_source_adapter_cell_trains_where_nothing_is_shipped(adapters_copy):
    (adapters_copy / sa.MANIFEST).unlink()
    _, plan = _starter_plan("shipped")
    _, trained = _starter_plan("train")
    assert {c.key for c in plan.cells.values()} == set(trained.cells)
    assert isinstance(next(iter(plan.cells.values())), Cell)


def test_the_report_of_a_study_on_shipped_adapters_says_where_they_came_from(tmp_path):
    from typer.testing import CliRunner

    from loraport.cli.main import app

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parents[2] / "results" / "distill_variants", run)
    assert json.loads((run / "run.json").read_text())["study"]["source_adapters"] == "shipped"
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "Source adapters: the package's own (`source_adapters: shipped`" in (run / "report.md").read_text()
