"""Skill or format on choice tasks: answer distributions, chance, and the flags a report writes, on
records with known answers (a three-choice task, chance 1/3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraport.bench.answers import answer_shares, choice_summary, wilson_interval
from loraport.bench.plan import make_plan
from loraport.bench.spec import Study
from loraport.testing import write_run_meta

N = 30
GOLD = ["A", "B", "C"] * (N // 3)  # gold letters: a third each
SKILLED = [g if i % 10 else "ABC"[("ABC".index(g) + 1) % 3] for i, g in enumerate(GOLD)]  # 27 of 30
ALWAYS_C = ["C"] * N  # 10 of 30 right: exactly chance, and constant
MOSTLY_C = ["C"] * 28 + ["A", "B"]  # 93% one letter
ANSWERS = {
    "base_y": [None] * N,  # never a parseable letter: 0.0, below chance
    "oracle_y": SKILLED,
    "teacher": SKILLED,
    "mean": ALWAYS_C,
    "global_ridge": MOSTLY_C,
}


def _record(name: str, cond: dict, answers: list) -> dict:
    correct = [int(a == g) for a, g in zip(answers, GOLD, strict=True)]
    return {
        "name": name,
        **{f: v for f, v in cond.items() if f != "eval"},
        "eval_key": cond["eval"],
        "scorers": {
            "choice_letter": {
                "ids": list(range(N)),
                "correct": correct,
                "invalid": [int(a is None) for a in answers],
                "answers": answers,
            }
        },
        "primary": "choice_letter",
        "chance": 1 / 3,
    }


def choice_run(root: Path) -> Path:
    study = Study(
        name="choice",
        source="base-x",
        target="base-y",
        anchors=["math_add", "sci_context"],
        heldout=["sci_context_chain"],
        methods={"mean": {}, "global_ridge": {}},
        n_anchors=[2],
        seeds=[0],
        eval={"n": N},
        scorers={"sci_context_chain": "choice_letter"},
    )
    plan = make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"})
    (root / "records").mkdir(parents=True)
    for name, cond in plan.conditions.items():
        key = cond["variant"] if cond["condition"] == "method" else cond["condition"]
        rec = _record(name, cond, ANSWERS[key])
        (root / "records" / f"{name}.json").write_text(json.dumps(rec))
    write_run_meta(root, study, plan)
    return root


def test_wilson_interval_is_the_textbook_one():
    lo, hi = wilson_interval(10, 30)  # p = 1/3, n = 30: 0.192 … 0.512 (Wilson 1927, z = 1.96)
    assert (round(lo, 3), round(hi, 3)) == (0.192, 0.512)
    assert wilson_interval(0, 30)[0] == 0.0 and wilson_interval(30, 30)[1] == 1.0


def test_answer_shares_count_unparseable_answers_as_none():
    rec = {"scorers": {"choice_letter": {"answers": ["C", None, "C", "A"]}}}
    assert answer_shares(rec, "choice_letter") == {"C": 0.5, "A": 0.25, "none": 0.25}
    assert answer_shares(rec, "exact") is None


def test_constant_and_chance_conditions_are_flagged_and_skill_is_not(tmp_path):
    records = [json.loads(p.read_text()) for p in (choice_run(tmp_path / "run") / "records").glob("*.json")]
    summary = choice_summary(records)
    task = summary["tasks"]["sci_context_chain"]
    assert task["chance"] == pytest.approx(1 / 3) and task["scorer"] == "choice_letter"
    conds = task["conditions"]
    assert conds["oracle_y"]["flags"] == [] and conds["oracle_y"]["accuracy"] == 0.9
    assert conds["base_y"]["flags"] == ["constant"]  # 'none' on every item, far below chance
    mean = next(v for k, v in conds.items() if k.startswith("mean"))
    assert mean["flags"] == ["constant", "at_chance"] and mean["shares"] == {"C": 1.0}
    ridge = next(v for k, v in conds.items() if k.startswith("global_ridge"))
    assert "constant" in ridge["flags"] and ridge["shares"]["C"] == pytest.approx(28 / 30, abs=1e-4)
    assert {f["condition"].split("__")[0] for f in summary["flagged"]} >= {"base_y", "mean", "global_ridge"}


def test_the_report_shows_chance_and_calls_out_flagged_cells_whatever_their_gap(tmp_path):
    from loraport.report import build_report

    run = choice_run(tmp_path / "run")
    build_report(run)
    md = (run / "report.md").read_text()
    section = md.split("## Choice tasks: skill or format?")[1]
    assert "**sci_context_chain**: chance 0.333, scored by `choice_letter`" in section
    assert "| oracle_y | 0.900 | 0.744 … 0.965 | A 33% · B 33% · C 33% | — |" in section
    assert "| base_y | 0.000 | 0.000 … 0.114 | none 100% | **constant** |" in section
    failures = md.split("## Failure modes")[1].split("\n## ")[0]
    assert "Constant or chance-level answers: mean" in failures
    assert (
        "answers 'C' on 100% of items; accuracy 0.333 (95% CI 0.192 … 0.512) includes chance 0.333"
        in failures
    )


def test_records_without_answers_leave_the_section_out(tmp_path):
    records = [json.loads(p.read_text()) for p in (choice_run(tmp_path / "run") / "records").glob("*.json")]
    for r in records:
        del r["scorers"]["choice_letter"]["answers"]
    assert choice_summary(records) == {}
