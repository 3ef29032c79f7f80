"""Study kinds are plugins: a kind is one StudyKind (its plan, its report and the model of its own
spec fields) registered in bench.kinds.STUDY_KINDS; the planner core, the spec and build_report
dispatch on the study's `kind:`, and the cell runner on bench.cellkinds.CELL_KINDS."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from loraport.bench.cellkinds import CELL_KINDS, CellKind, stages
from loraport.bench.cells import run_cell
from loraport.bench.kinds import STUDY_KINDS, KindOptions, StudyKind
from loraport.bench.plan import Planner, make_plan
from loraport.bench.spec import Study, StudyError, load_study
from loraport.bench.store import Store
from loraport.report import build_report


def _quick(**changes) -> Study:
    raw = yaml.safe_load(resources.files("loraport.bench").joinpath("studies", "quick.yaml").read_text())
    return Study(**{**raw, **changes})


def test_a_study_kind_is_one_registered_plan_and_report(monkeypatch, tmp_path):
    """A toy kind (the target base on each held-out task) plans through the core's cells alone,
    and build_report hands its run to the kind's own report."""

    def plan(p: Planner, study: Study) -> None:
        for task in study.heldout:
            p.conditions[f"{task}__base_y"] = {
                "task": task,
                "condition": "base_y",
                "eval": p.evaluate("target", task, None),
            }

    def report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"kind": meta["study"]["kind"], "tasks": sorted(r["task"] for r in records)}

    monkeypatch.setitem(STUDY_KINDS._items, "base_only", StudyKind(plan=plan, report=report))
    study = _quick(kind="base_only")
    fps = {study.source: "fp-x", study.target: "fp-y"}
    plan_ = make_plan(study, fps)
    port_plan = make_plan(_quick(), fps)
    assert {c.kind for c in plan_.cells.values()} == {"eval"} and len(plan_.cells) == len(study.heldout)
    for name, cond in plan_.conditions.items():  # the same cell, with the same key, as the port study's
        assert cond["eval"] == port_plan.conditions[name]["eval"]

    run = tmp_path / "run"
    (run / "records").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"study": study.model_dump(mode="json")}))
    for name, cond in plan_.conditions.items():
        (run / "records" / f"{name}.json").write_text(json.dumps({"task": cond["task"]}))
    assert build_report(run) == {"kind": "base_only", "tasks": sorted(study.heldout)}

    with pytest.raises(Exception, match="unknown study kind 'prot'"):
        _quick(kind="prot")


def test_the_port_study_module_loads_first_and_without_torch():
    """`loraport report` loads every kind's module: the port study's must import no torch, and must
    load on its own (before bench.plan or bench.kinds)."""
    code = (
        "import sys\n"
        "import loraport.bench.port_study\n"
        "from loraport.bench.kinds import STUDY_KINDS\n"
        "assert 'port' in STUDY_KINDS\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


class _FloorOptions(KindOptions):
    """A toy kind's own fields: a floor and one more base to compare with."""

    floor: float = Field(0.0, ge=0, le=1)
    also: list[str] = Field(default_factory=list)

    def bases(self) -> tuple[str, ...]:
        return tuple(self.also)

    def check(self, study: Study) -> None:
        if study.target in self.also:
            raise ValueError(f"also: {study.target!r} is the target already")


def _plan_base_only(p: Planner, study: Study) -> None:
    for task in study.heldout:
        p.conditions[f"{task}__base_y"] = {"task": task, "eval": p.evaluate("target", task, None)}


def test_a_kind_declares_its_own_spec_fields(monkeypatch, tmp_path):
    """A kind's fields sit beside the core's in the YAML, are validated by its own model
    (extra="forbid"), read as study attributes, round-trip through to_yaml, and are an error in
    a study of another kind; no shared file names them."""
    kind = StudyKind(plan=_plan_base_only, report=lambda *a: {}, options=_FloorOptions)
    monkeypatch.setitem(STUDY_KINDS._items, "floor_only", kind)
    study = _quick(kind="floor_only", floor=0.25, also=["tiny-llama-l"])
    assert study.floor == 0.25 and study.kind_options == _FloorOptions(floor=0.25, also=["tiny-llama-l"])
    assert study.bases() == (study.source, study.target, "tiny-llama-l")
    dumped = study.model_dump(mode="json")
    assert dumped["floor"] == 0.25 and "kind_options" not in dumped
    path = tmp_path / "again.yaml"
    study.to_yaml(path)
    assert load_study(path) == study and load_study(path).to_yaml() == study.to_yaml()

    def error(text: str) -> str:
        (tmp_path / "s.yaml").write_text(study.to_yaml().replace("floor: 0.25", text))
        with pytest.raises(StudyError) as e:
            load_study(tmp_path / "s.yaml")
        return str(e.value)

    assert "unknown field 'flor' (did you mean 'floor'?)" in error("flor: 0.25")
    assert "floor: Input should be less than or equal to 1" in error("floor: 2")
    assert "also: 'tiny-llama-y' is the target already" in _error(
        lambda: _quick(kind="floor_only", also=["tiny-llama-y"])
    )
    assert "floor: only a floor_only study uses it" in _error(lambda: _quick(floor=0.25))
    assert _quick(floor=None) == _quick()  # another kind's field left empty is no error
    assert not hasattr(_quick(), "floor")


def _error(make) -> str:
    with pytest.raises(ValueError) as e:
        make()
    return str(e.value)


def test_a_cell_kind_registers_how_it_runs(monkeypatch, tmp_path):
    """A kind's own cell kind is computed by the function it registers, in its stage: neither
    bench/cells.py nor the runner names it."""
    import torch

    from loraport.adapters import LowRank, save_adapter

    assert stages() == ("train", "teach", "port", "distill", "control", "eval")

    def blank(cell, store) -> None:  # a rank-1 adapter with zero ΔW on one module
        lr = LowRank(torch.zeros(4, 1), torch.zeros(1, 4))
        save_adapter(
            store.adapter(cell.key),
            {"model.layers.0.mlp.up_proj": lr},
            rank=1,
            alpha=1.0,
            base_model=cell.params["base"],
            force=True,
        )

    monkeypatch.setitem(CELL_KINDS._items, "blank", CellKind(blank, stage=35))
    assert stages() == ("train", "teach", "port", "blank", "distill", "control", "eval")
    for src in ("bench/cells.py", "bench/runner.py"):
        assert '"blank"' not in (Path(build_report.__code__.co_filename).parents[1] / src).read_text()

    def plan(p: Planner, study: Study) -> None:
        key = p.add("blank", "k-blank", (), {"base": study.target}, "a blank adapter")
        p.conditions["t__blank"] = {
            "task": study.heldout[0],
            "eval": p.evaluate("target", study.heldout[0], key),
        }

    monkeypatch.setitem(STUDY_KINDS._items, "blanks", StudyKind(plan=plan, report=lambda *a: {}))
    study = _quick(kind="blanks")
    cell = make_plan(study, {study.source: "fp-x", study.target: "fp-y"}).by_kind("blank")[0]
    store = Store(tmp_path)
    assert run_cell(cell, store)["error"] is None and store.has("blank", cell.key)
    assert run_cell(cell, store)["cached"] is True


def test_a_cell_kind_that_writes_no_adapter_says_when_it_is_done(monkeypatch, tmp_path):
    """A cell kind whose output is another file (here a JSON note) registers how the store tells
    it is computed: store.py does not name it either."""
    import json

    def note(cell, store) -> None:
        (store.root / f"{cell.key}.json").write_text(json.dumps({"base": cell.params["base"]}))

    def done(store, key) -> bool:
        return (store.root / f"{key}.json").is_file()

    monkeypatch.setitem(CELL_KINDS._items, "note", CellKind(note, stage=36, done=done))
    assert '"note"' not in (Path(build_report.__code__.co_filename).parents[1] / "bench/store.py").read_text()

    def plan(p: Planner, study: Study) -> None:
        p.add("note", "k-note", (), {"base": study.target}, "a note")

    monkeypatch.setitem(STUDY_KINDS._items, "notes", StudyKind(plan=plan, report=lambda *a: {}))
    study = _quick(kind="notes")
    cell = make_plan(study, {study.source: "fp-x", study.target: "fp-y"}).by_kind("note")[0]
    store = Store(tmp_path)
    assert not store.has("note", cell.key)
    assert run_cell(cell, store)["error"] is None and store.has("note", cell.key)
    assert run_cell(cell, store)["cached"] is True
