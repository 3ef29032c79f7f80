"""A mini study with the behaviour methods and the controls: every cell records its cost, the
controls are planned and reported, and the report says what each method needs and costs."""

from __future__ import annotations

import json

import pytest
import yaml

from loraport.bench import load_study, run_study
from loraport.bench.spec import StudyError


@pytest.fixture(scope="module")
def behaviour_run(behaviour_spec):
    out = behaviour_spec.parent / "run"
    run_study(load_study(behaviour_spec), out, threads=1, progress=False, log=lambda s: None)
    return out


def test_ray_runs_the_behaviour_stages_with_the_same_numbers(behaviour_spec, behaviour_run):
    out = behaviour_spec.parent / "ray"
    run_study(load_study(behaviour_spec), out, executor="ray", threads=1, progress=False, log=lambda s: None)

    def accuracies(run):
        recs = [json.loads(p.read_text()) for p in (run / "records").glob("*.json")]
        return {r["name"]: r["scorers"] for r in recs}

    assert accuracies(out) == accuracies(behaviour_run)


def test_every_cell_records_its_cost(behaviour_run):
    recs = [json.loads(p.read_text()) for p in (behaviour_run / "records").glob("*.json")]
    assert not [r["name"] for r in recs if "missing" in r]
    for r in recs:
        if r["condition"] == "base_y":
            continue
        cost = r["cost"]
        assert cost is not None, r["name"]
        assert {"seconds", "steps", "generated_tokens", "data"} <= set(cost), r["name"]
    data = {
        (r["method"], r["options"].get("init")): r["cost"]["data"]
        for r in recs
        if r["condition"] == "method" and "control" not in r
    }
    assert data["align", None] == "generic text"
    assert data["distill", "zero"] == "unlabeled prompts"
    assert data["distill", "global_ridge"] == "unlabeled prompts + anchors"
    assert data["spanfit", None] == "anchors + unlabeled prompts"
    assert {r["cost"]["data"] for r in recs if r["condition"] == "oracle_y"} == {"labels"}


def test_controls_are_planned_and_reported(behaviour_run):
    recs = [json.loads(p.read_text()) for p in (behaviour_run / "records").glob("*.json")]
    shuffled = [r for r in recs if r.get("control") == "shuffled"]
    assert {r["n_anchors"] for r in shuffled} == {3}  # the largest N only
    assert {r["shuffled_from"] for r in shuffled if r["task"] == "math_sum_more"} == {"sci_which"}
    assert {r["variant"] for r in recs if r.get("control") == "random"} == {"random:global_ridge"}
    summary = json.loads((behaviour_run / "summary.json").read_text())
    assert "teacher_ceiling" in summary  # None here: the mini zoo's oracles gain nothing
    assert {r["variant"].split(":")[0] for r in summary["control_aggregates"]} == {"shuffled", "random"}
    assert all(not r["variant"].startswith(("shuffled:", "random:")) for r in summary["aggregates"])
    assert summary["costs"]["oracle"]["steps"] == 1
    report = (behaviour_run / "report.md").read_text()
    assert "## What each method needs and costs" in report and "## Controls" in report
    assert "Teacher ceiling" in report
    assert "Controls were run, but no usable task gives a method-versus-control comparison." in report
    assert summary["shuffled_sources"] == {"math_sum_more": "sci_which", "sci_which": "math_sum_more"}
    assert (
        "task ← the X adapter its controls ported): math_sum_more ← sci_which, sci_which ← math_sum_more."
        in report
    )
    assert (behaviour_run / "figures" / "cost_quality.png").is_file()


def test_bad_distill_init_and_random_control_fail_before_work(tmp_path):
    base = {
        "name": "b",
        "source": "x",
        "target": "y",
        "anchors": ["math_add", "math_sub"],
        "heldout": ["math_sum_more"],
        "n_anchors": [2],
    }
    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump({**base, "methods": {"distill": {"init": "globl_ridge"}}})
    )
    with pytest.raises(StudyError, match="did you mean 'global_ridge'"):
        load_study(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(
        yaml.safe_dump({**base, "methods": {"mean": {}}, "controls": {"random": "global_ridge"}})
    )
    with pytest.raises(StudyError, match=r"controls\.random: .global_ridge. is not a method variant"):
        load_study(tmp_path / "b.yaml")


def test_teacher_ceiling_averages_usable_tasks():
    from loraport.bench.metrics import teacher_ceiling

    rows = {
        "a": {"usable": True, "teacher": 0.5, "base_y": 0.0, "oracle_y": 1.0},
        "b": {"usable": True, "teacher": 0.1, "base_y": 0.1, "oracle_y": 0.3},
        "c": {"usable": False, "teacher": 0.9, "base_y": 0.0, "oracle_y": 0.0},
    }
    got = teacher_ceiling(rows)
    assert got["gap_recovered"] == pytest.approx(0.25) and set(got["per_task"]) == {"a", "b"}
    assert teacher_ceiling({"c": rows["c"]}) is None


def test_control_rows_pair_each_control_with_its_method():
    from loraport.bench.metrics import control_rows

    def row(variant, gaps):
        pt = {t: {"gap_recovered": g} for t, g in gaps.items()}
        return {"variant": variant, "pool": "all", "n_anchors": 8, "per_task": pt, "ci95": None}

    agg = [
        row("global_ridge", {"a": 0.4, "b": 0.2}),
        row("shuffled:global_ridge", {"a": 0.1, "b": 0.1}),
        row("spanfit", {"a": 0.1}),
        row("shuffled:spanfit", {"a": 0.3, "b": 0.9}),  # b has no method cell: compared on a only
    ]
    rows = {r["of"]: r for r in control_rows(agg)}
    assert rows["global_ridge"]["beats_control"] and rows["global_ridge"]["method_gap"] == pytest.approx(0.3)
    assert not rows["spanfit"]["beats_control"] and rows["spanfit"]["tasks"] == ["a"]
