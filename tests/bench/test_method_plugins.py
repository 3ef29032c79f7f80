"""Port methods are plugins: each implements one protocol (requires / plan / run_cell / port), the
planner, the cell runner and the API hold no name checks, and a method added as one module (zero)
plans, runs and ports through the same seams."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import pytest
import yaml

from loraport import api
from loraport.adapters import load_adapter
from loraport.arch import LAYER_MAPS, arch_for
from loraport.bench.cells import run_cell
from loraport.bench.plan import make_plan
from loraport.bench.spec import Study
from loraport.bench.store import Store
from loraport.models import load_config
from loraport.port import METHODS, PortMethod, load_anchors
from loraport.port.methods import NEEDS

SRC = Path(api.__file__).parent


def test_every_method_implements_the_protocol():
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert issubclass(cls, PortMethod) and cls.name == name
        assert set(cls.requires) <= NEEDS, name
        for hook in ("plan", "run_cell", "port"):
            assert callable(getattr(cls, hook)), (name, hook)
    assert "cka" in LAYER_MAPS and "relative" in LAYER_MAPS


@pytest.mark.parametrize("path", ["api.py", "bench/cells.py", "bench/plan.py", "bench/port_study.py"])
def test_no_method_name_checks_outside_the_methods(path):
    text = (SRC / path).read_text()
    names = "|".join(METHODS.names())
    hits = re.findall(rf"""[=!]=\s*["']({names})["']""", text)
    assert not hits, f"{path} checks method names {hits}: move the behaviour into the method"


def _quick(**changes) -> Study:
    raw = yaml.safe_load(resources.files("loraport.bench").joinpath("studies", "quick.yaml").read_text())
    return Study(**{**raw, **changes})


def test_zero_plans_one_port_cell_per_input():
    study = _quick(methods={"zero": {}, "mean": {}}, controls={"shuffled": True})
    plan = make_plan(study, {study.source: "fp-x", study.target: "fp-y"})
    zero = [c for c in plan.conditions.values() if c.get("variant") == "zero"]
    assert len(zero) == len(study.heldout) * len(study.n_anchors) * len(study.seeds)
    for cond in zero:
        cell = plan.cells[cond["port"]]
        assert cell.kind == "port" and cell.params["method"] == "zero"
        assert cell.deps == (plan.conditions[f"{cond['task']}__teacher"]["train"],)
    # the same input at every N and seed: one cell
    assert len({c["port"] for c in zero}) == len(study.heldout)


def test_zero_ports_through_the_api_and_the_cell_runner(anchor_set, tmp_path):
    spec = load_anchors(anchor_set)
    x = anchor_set.parent / "x" / "held"
    out = api.port(x, spec.target_base, tmp_path / "api", method="zero")
    ay = arch_for(load_config(spec.target_base))
    ad = load_adapter(out)
    assert sorted(ad.modules) == sorted(m.name for m in ay.modules())
    assert all(float(ad.delta(m).abs().max()) == 0.0 for m in ad.modules)

    store = Store(tmp_path / "run")
    shutil.copytree(x, store.adapter("x-key"))
    study = _quick(methods={"zero": {}}, controls={})
    plan = make_plan(study, {study.source: "fp-x", study.target: "fp-y"})
    cell = next(c for c in plan.cells.values() if c.params.get("method") == "zero")
    cell.params.update(x="x-key", target=spec.target_base)
    result = run_cell(cell, store, threads=1)
    assert result["error"] is None, result
    ran = load_adapter(store.adapter(cell.key))
    assert sorted(ran.modules) == sorted(ad.modules)


def test_cka_layer_map_needs_both_bases():
    from loraport.arch import layer_map
    from loraport.errors import ArchError

    with pytest.raises(ArchError, match="needs both bases"):
        layer_map(4, 3, "cka")
