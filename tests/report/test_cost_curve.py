"""The cost curve over a budget sweep (bench.cost_curve, report.cost_curve), on hand-made records
with known answers and costs: the table's values, where a curve stops gaining, where it crosses the
teacher (point estimate and CI lower end), and the report section and figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraport.bench.cost_curve import (
    budget_of,
    cost_curves,
    crosses_teacher_at,
    oracle_curve,
    stops_gaining_at,
)
from loraport.bench.metrics import aggregate, costs, task_rows
from loraport.bench.plan import make_plan
from loraport.bench.spec import Study
from loraport.bench.teacher_ratio import teacher_ratios
from loraport.report import build_report
from loraport.testing import write_run_meta

N = 400
TASK = "math_sum_more"
BASE, ORACLE, TEACHER = 80, 320, 240  # correct answers out of N: 20%, 80%, 60%
BUDGETS = [10, 20, 40, 80]
# correct answers per budget: zero init levels off above the teacher; align init keeps gaining
ACC = {
    "zero": {10: 120, 20: 200, 40: 248, 80: 252},
    "align": {10: 160, 20: 240, 40: 264, 80: 320},
}
ORACLE_COST = {"seconds": 100.0, "steps": 200, "generated_tokens": 0, "data": "labels"}
# the oracle after epochs 1-3 of 4 (correct answers): the labels teach Y nothing in the first quarter
CHECKPOINTS = {1: 80, 2: 200, 3: 300}


def _cost(budget: int) -> dict:
    return {
        "seconds": 10.0 + budget / 2,
        "steps": budget,
        "generated_tokens": 5000,
        "data": "unlabeled prompts",
    }


def _plan(name: str, methods: dict):
    """The plan and study of TASK on two stand-in bases with these methods."""
    study = Study(
        name=name,
        source="base-x",
        target="base-y",
        anchors=["math_add", "math_mul"],
        heldout=[TASK],
        methods=methods,
        n_anchors=[2],
        seeds=[0],
        eval={"n": N},
    )
    return make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"}), study


def hand_made_sweep(root: Path) -> Path:
    plan, study = _plan("budgets", {"distill": {"init": ["zero", "align"], "steps": BUDGETS}})
    (root / "records").mkdir(parents=True)
    for name, cond in plan.conditions.items():
        c = cond["condition"]
        if c == "method":
            k, cost = ACC[cond["options"]["init"]][cond["options"]["steps"]], _cost(cond["options"]["steps"])
        elif c == "oracle_checkpoint":
            k, cost = CHECKPOINTS[cond["epoch"]], None
        else:
            k, cost = {"base_y": BASE, "oracle_y": ORACLE, "teacher": TEACHER}[c], None
            cost = ORACLE_COST if c == "oracle_y" else None
        # base Y's correct items first; a method's gains sit at the end (other items than the
        # teacher's gains), so its teacher ratio has a CI of realistic width
        correct = [1] * k + [0] * (N - k) if c != "method" else [1] * BASE + [0] * (N - k) + [1] * (k - BASE)
        record = {
            "name": name,
            **{f: v for f, v in cond.items() if f != "eval"},
            "eval_key": cond["eval"],
            "scorers": {"exact": {"ids": list(range(N)), "correct": correct, "invalid": [0] * N}},
            "primary": "exact",
            **({"cost": cost} if cost else {}),
        }
        (root / "records" / f"{name}.json").write_text(json.dumps(record))
    write_run_meta(root, study, plan)
    return root


def _curves(run: Path) -> dict[str, dict]:
    records = [json.loads(p.read_text()) for p in sorted((run / "records").glob("*.json"))]
    tasks = task_rows(records, 0.03)
    agg = aggregate(records, 0.03)
    curves = cost_curves(agg, costs(records), teacher_ratios(records, tasks, 0.03))
    return {c["family"]: c for c in curves}


def test_budget_of_reads_the_steps_option():
    assert budget_of("distill[init=zero][steps=40]") == ("distill[init=zero]", 40)
    assert budget_of("distill[init=zero]") is None  # not part of a sweep
    assert budget_of("shuffled:distill[steps=40]") is None  # a control is not a point


def test_the_table_holds_each_budgets_compute_and_both_ratios(tmp_path):
    curves = _curves(hand_made_sweep(tmp_path))
    assert set(curves) == {"distill[init=zero]", "distill[init=align]"}
    zero = curves["distill[init=zero]"]
    assert [p["budget"] for p in zero["points"]] == BUDGETS
    p40 = zero["points"][2]
    assert p40["steps"] == 40 and p40["relative_steps"] == pytest.approx(40 / 200)
    assert p40["relative_seconds"] == pytest.approx(30 / 100) and p40["generated_tokens"] == 5000
    assert p40["gap_recovered"] == pytest.approx((248 - 80) / 240)
    assert p40["teacher_ratio"] == pytest.approx((248 - 80) / 160)
    lo, hi = p40["ci95"]
    assert lo < p40["gap_recovered"] < hi
    assert zero["oracle"]["seconds"] == 100.0


def test_where_each_curve_stops_gaining_and_crosses_the_teacher(tmp_path):
    curves = _curves(hand_made_sweep(tmp_path))
    zero, align = curves["distill[init=zero]"], curves["distill[init=align]"]
    # zero: 248 → 252 correct at 80 steps is within the CI at 40; its ratio passes 1 at 40
    # (1.05) but the CI at that budget reaches below 1, and so does the one at 80
    assert zero["stops_gaining_at"] == 40 and not zero["still_gaining"]
    assert zero["crosses_teacher_at"] == 40 and zero["crosses_teacher_ci_at"] is None
    # align: 264 → 320 correct is more than the CI at 40 allows: still gaining; ratio 1.0 at 20
    # steps, 1.5 at 80 with its CI clear of 1
    assert align["stops_gaining_at"] == 80 and align["still_gaining"]
    assert align["crosses_teacher_at"] == 20 and align["crosses_teacher_ci_at"] == 80


def test_readings_on_constructed_points():
    def pts(*rows):
        return [
            {"budget": b, "gap_recovered": g, "ci95": ci, "teacher_ratio": r, "teacher_ci95": rci}
            for b, g, ci, r, rci in rows
        ]

    flat = pts((1, 0.5, [0.4, 0.6], 0.9, [0.7, 1.1]), (2, 0.55, [0.45, 0.65], 1.0, [0.8, 1.2]))
    assert stops_gaining_at(flat) == 1 and crosses_teacher_at(flat) == 2
    assert crosses_teacher_at(flat, lower_ci=True) is None
    no_ci = pts((1, 0.5, None, None, None), (2, 0.4, None, None, None), (3, 0.6, None, None, None))
    assert stops_gaining_at(no_ci) == 3  # without CIs, any later gain counts
    assert crosses_teacher_at(no_ci) is None  # undefined teacher ratio: never crosses
    sure = pts((1, 0.1, [0.0, 0.2], 1.2, [1.05, 1.4]), (2, None, None, None, None))
    assert crosses_teacher_at(sure, lower_ci=True) == 1 and stops_gaining_at(sure) == 1


def test_the_report_has_the_section_and_the_figure(tmp_path):
    run = hand_made_sweep(tmp_path)
    summary = build_report(run)
    assert {c["family"] for c in summary["cost_curve"]} == {"distill[init=zero]", "distill[init=align]"}
    report = (run / "report.md").read_text()
    assert "## Cost curve" in report
    assert "**distill[init=zero]** (N=2, pool `all`): stops gaining at steps=40" in report
    assert "reaches the teacher at steps=40 (teacher ratio ≥ 1); no budget's CI lower end reaches 1" in report
    assert "| 40 | 0.20 | 5000 | 0.30 | 0.700 |" in report
    assert (run / "figures" / "cost_curve.png").stat().st_size > 0
    assert "cost_curve.png" in (run / "report.html").read_text()


def test_a_sweep_plans_the_oracles_earlier_epochs_and_no_sweep_does_not(tmp_path):
    run = hand_made_sweep(tmp_path)
    records = [json.loads(p.read_text()) for p in sorted((run / "records").glob("*.json"))]
    ckpt = sorted((r for r in records if r["condition"] == "oracle_checkpoint"), key=lambda r: r["epoch"])
    oracle = next(r for r in records if r["condition"] == "oracle_y")
    assert [(r["epoch"], r["epochs"]) for r in ckpt] == [(1, 4), (2, 4), (3, 4)]
    assert all(r["oracle_train"] == oracle["train"] and "cost" not in r for r in ckpt)
    plan, _ = _plan("one_budget", {"distill": {"steps": 40}})
    assert not any(c["condition"] == "oracle_checkpoint" for c in plan.conditions.values())


def test_the_oracle_curve_is_read_like_a_method_and_kept_out_of_the_baselines(tmp_path):
    run = hand_made_sweep(tmp_path)
    records = [json.loads(p.read_text()) for p in sorted((run / "records").glob("*.json"))]
    points = oracle_curve(records, 0.03)
    assert [p["relative_steps"] for p in points] == [0.25, 0.5, 0.75]
    for p, k in zip(points, CHECKPOINTS.values(), strict=True):
        assert p["gap_recovered"] == pytest.approx((k - BASE) / (ORACLE - BASE))
        assert p["per_task"][TASK]["acc"] == pytest.approx(k / N)
    assert points[0]["ci95"][0] <= 0 <= points[0]["ci95"][1]  # epoch 1 = base Y's items
    lo, hi = points[1]["ci95"]
    assert lo < 0.5 < hi
    # the task's baselines are still base_y / oracle_y / teacher (not an earlier epoch)
    assert task_rows(records, 0.03)[TASK]["oracle_y"] == pytest.approx(ORACLE / N)
    summary = build_report(run)
    assert summary["oracle_curve"] == points
    report = (run / "report.md").read_text()
    assert "**The oracle itself, after each earlier epoch**" in report
    assert f"| 2 of 4 | 0.50 | 0.500 | {lo:.3f} … {hi:.3f} | 0.500 |" in report
