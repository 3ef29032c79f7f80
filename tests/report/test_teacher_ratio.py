"""The teacher ratio beside gap_recovered, on hand-made records with known answers: its value per
task and seed, its aggregate over the tasks where both ratios are defined, and its edge cases (teacher
no better than base, teacher gain below the threshold, oracle unusable, other items)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraport.bench.metrics import task_rows
from loraport.bench.plan import make_plan
from loraport.bench.spec import Study
from loraport.bench.teacher_ratio import teacher_ratio, teacher_ratios
from loraport.testing import write_run_meta

GR = "global_ridge"
N = 10
# correct answers out of N, per task and condition; methods per seed (0, 1)
SCORES = {
    # teacher gain 0.4: ratios 1.0 and 0.5 (gap_recovered 4/6 and 2/6)
    "math_sum_more": {"base_y": 2, "oracle_y": 8, "teacher": 6, "mean": (2, 4), GR: (6, 4)},
    # teacher equals base: undefined, flagged
    "sci_context_chain": {"base_y": 1, "oracle_y": 5, "teacher": 1, "mean": (1, 1), GR: (3, 3)},
    # teacher gain 0.1 < threshold 0.15: undefined, flagged
    "math_mul_add": {"base_y": 2, "oracle_y": 6, "teacher": 3, "mean": (2, 2), GR: (5, 5)},
    # teacher gain 0.5 (ratios 1.2 and 0.8) but oracle equals base: shown, not aggregated
    "code_paren": {"base_y": 3, "oracle_y": 3, "teacher": 8, "mean": (3, 3), GR: (9, 7)},
    # teacher gain 0.2; the method scores 0.9 (ratio 3.5): a student above its teacher
    "sci_color": {"base_y": 2, "oracle_y": 9, "teacher": 4, "mean": (2, 2), GR: (9, 9)},
}


def hand_made_run(root: Path) -> Path:
    study = Study(
        name="ratios",
        source="base-x",
        target="base-y",
        anchors=["math_add", "math_mul", "sci_context"],
        heldout=list(SCORES),
        methods={"mean": {}, GR: {}},
        n_anchors=[2],
        seeds=[0, 1],
        eval={"n": N},
        usable_threshold=0.15,
    )
    plan = make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"})
    (root / "records").mkdir(parents=True)
    for name, cond in plan.conditions.items():
        scores = SCORES[cond["task"]]
        k = (
            scores[cond["variant"]][cond["seed"]]
            if cond["condition"] == "method"
            else scores[cond["condition"]]
        )
        record = {
            "name": name,
            **{f: v for f, v in cond.items() if f != "eval"},
            "eval_key": cond["eval"],
            "scorers": {
                "exact": {"ids": list(range(N)), "correct": [1] * k + [0] * (N - k), "invalid": [0] * N}
            },
            "primary": "exact",
        }
        (root / "records" / f"{name}.json").write_text(json.dumps(record))
    write_run_meta(root, study, plan)
    return root


def _records(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "records").glob("*.json"))]


def test_the_ratio_and_its_undefined_cases():
    assert teacher_ratio(0.6, 0.2, 0.6) == pytest.approx(1.0)
    assert teacher_ratio(0.9, 0.2, 0.4) == pytest.approx(3.5)  # above the teacher
    assert teacher_ratio(0.1, 0.2, 0.6) == pytest.approx(-0.25)  # below base: kept, negative
    assert teacher_ratio(0.5, 0.2, 0.2) is None  # teacher equals base: never divided by zero
    assert teacher_ratio(0.5, 0.3, 0.2) is None  # teacher below base
    assert teacher_ratio(None, 0.2, 0.6) is None and teacher_ratio(0.5, 0.2, None) is None


def test_per_task_flags_and_the_aggregate_over_the_same_tasks_as_gap_recovered(tmp_path):
    records = _records(hand_made_run(tmp_path / "run"))
    ratios = teacher_ratios(records, task_rows(records, 0.15), 0.15)
    info = ratios["tasks"]
    assert info["sci_context_chain"]["why_undefined"] == "teacher no better than base Y"
    assert info["math_mul_add"]["why_undefined"] == "teacher − base 0.100 < 0.15"
    assert info["code_paren"]["defined"] and not info["code_paren"]["in_aggregate"]
    assert ratios["aggregate_tasks"] == ["math_sum_more", "sci_color"]
    gr = next(r for r in ratios["aggregates"] if r["variant"] == GR)
    assert gr["per_task"]["math_sum_more"]["teacher_ratio"] == pytest.approx(0.75)
    assert gr["per_task"]["code_paren"]["teacher_ratio"] == pytest.approx(1.0)  # shown, not pooled
    assert "sci_context_chain" not in gr["per_task"] and "math_mul_add" not in gr["per_task"]
    # per seed, the mean over the pooled tasks: s0 (1.0 + 3.5) / 2, s1 (0.5 + 3.5) / 2
    assert gr["teacher_ratio"] == pytest.approx((2.25 + 2.0) / 2)
    assert gr["std"] == pytest.approx(float(__import__("numpy").std([2.25, 2.0], ddof=1)))
    assert gr["ci95"][0] <= gr["teacher_ratio"] <= gr["ci95"][1]
    mean = next(r for r in ratios["aggregates"] if r["variant"] == "mean")
    assert mean["per_task"]["math_sum_more"]["teacher_ratio"] == pytest.approx(0.25)  # (0 + 0.5) / 2
    assert mean["teacher_ratio"] == pytest.approx((0.0 + 0.25) / 2)


def test_records_on_other_items_are_left_out(tmp_path):
    records = _records(hand_made_run(tmp_path / "run"))
    for r in records:
        if r["task"] == "sci_color" and r["condition"] == "teacher":
            r["scorers"]["exact"]["ids"] = list(range(100, 100 + N))
    info = teacher_ratios(records, task_rows(records, 0.15), 0.15)["tasks"]["sci_color"]
    assert info["why_undefined"] == "teacher scored on other items than base Y"


def test_summary_json_and_report_show_both_ratios(tmp_path):
    from loraport.report import build_report

    run = hand_made_run(tmp_path / "run")
    summary = build_report(run)
    stored = json.loads((run / "summary.json").read_text())
    assert stored["teacher_ratio"]["aggregate_tasks"] == ["math_sum_more", "sci_color"]
    gr = next(r for r in summary["teacher_ratio"]["aggregates"] if r["variant"] == GR)
    assert gr["teacher_ratio"] == pytest.approx(2.125)
    md = (run / "report.md").read_text()
    section = md.split("## Two ratios")[1].split("\n## ")[0]
    # gap_recovered over the 4 usable tasks: s0 (4/6 + 2/4 + 3/4 + 1) / 4, s1 (2/6 + 2/4 + 3/4 + 1) / 4
    assert f"| {GR} | 0.688 ± 0.059 | 0.477 … 0.875 | 2.125 ± 0.177 |" in section
    assert "| sci_context_chain | +0.0 |" in section and "**teacher no better than base Y**" in section
    assert "| code_paren | +50.0 | +0.000 | +1.000 | oracle unusable: not aggregated |" in section
    html = (run / "report.html").read_text()
    assert "Two ratios" in html and "teacher no better than base Y" in html
