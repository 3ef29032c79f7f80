"""Every shipped study plans the same cells, with the same keys, params, labels and conditions, as
when tests/bench/data/plans.json was recorded (before port methods became plugins). Cache keys are
what a running study's cache depends on, so a refactor that changes one is a behaviour change.

To re-record after an intended change: LORAPORT_RECORD_PLANS=1 python3 -m pytest -q tests/bench/test_plan_stable.py
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from loraport.bench.plan import make_plan
from loraport.bench.spec import load_study

FIXTURE = Path(__file__).parent / "data" / "plans.json"
STUDIES_DIR = Path(str(resources.files("loraport.bench").joinpath("studies")))
STUDIES = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
# studies whose full cpu key list is kept (the others only by digest: round4_3b alone has 6k cells)
LISTED = {"quick", "demo", "wide", "cross_domain", "real_smollm2_gemma3"}
DEVICES = ("cpu", "cuda:0")


@pytest.fixture(autouse=True)
def _keep_task_registry(monkeypatch):
    """Loading a study registers its few-shot task variants (math_add@2shot, ...) in TASKS; undo
    that after each test so later tests see the registry they expect."""
    from loraport.tasks.base import TASKS

    monkeypatch.setattr(TASKS, "_items", dict(TASKS._items))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def summarize(name: str, device: str) -> dict[str, Any]:
    study = load_study(STUDIES_DIR / f"{name}.yaml")
    fps = {study.source: "fp-x", study.target: "fp-y"}
    fps.update({b: f"fp-{b}" for b in study.bases() if b not in fps})  # a tiers study's other tiers
    plan = make_plan(study, fps, device=device)
    cells = {
        k: {"kind": c.kind, "deps": list(c.deps), "label": c.label, "params": c.params}
        for k, c in plan.cells.items()
    }
    kinds = sorted({c["kind"] for c in cells.values()})
    out = {
        "n_cells": len(cells),
        "n_conditions": len(plan.conditions),
        "cells_by_kind": {
            kind: _digest({k: c for k, c in cells.items() if c["kind"] == kind}) for kind in kinds
        },
        "conditions": _digest(plan.conditions),
        "skipped": plan.skipped,
    }
    if device == "cpu" and name in LISTED:
        out["keys"] = {k: cells[k]["kind"] for k in sorted(cells)}
    return out


def test_shipped_studies_are_recorded():
    recorded = json.loads(FIXTURE.read_text())
    assert set(LISTED) <= set(STUDIES)
    assert sorted(recorded) == STUDIES, (
        "a shipped study has no recorded plan: record it with the planner as it was before your change"
        " (LORAPORT_RECORD_PLANS=1, see the module docstring)"
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", STUDIES)
def test_plan_is_unchanged(name, device):
    got = summarize(name, device)
    if os.environ.get("LORAPORT_RECORD_PLANS"):
        data = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
        data.setdefault(name, {})[device] = got
        FIXTURE.write_text(json.dumps(data, sort_keys=True, indent=0) + "\n")
        return
    want = json.loads(FIXTURE.read_text())[name][device]
    if "keys" in want:
        missing = sorted(set(want["keys"]) - set(got["keys"]))
        extra = sorted(set(got["keys"]) - set(want["keys"]))
        assert not missing and not extra, f"{name}: missing {missing[:5]}, new {extra[:5]}"
    assert got == want
