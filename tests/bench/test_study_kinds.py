"""Study kinds are plugins: a kind is one StudyKind (its plan and its report) registered in
bench.kinds.STUDY_KINDS; the planner core and build_report dispatch on the study's `kind:`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from loraport.bench.kinds import STUDY_KINDS, StudyKind
from loraport.bench.plan import Planner, make_plan
from loraport.bench.spec import Study
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
