"""The report from hand-made records: its numbers checked cell by cell, and `loraport report`
rebuilding it in a fresh interpreter that never imports torch (reports rebuild on a machine
without it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loraport.bench.plan import make_plan
from loraport.bench.spec import Study
from loraport.testing import write_run_meta

# correct answers out of 10 per condition (seeds 0, 1 for the methods)
SCORES = {
    "base_y": 2,
    "oracle_y": 8,
    "teacher": 9,
    ("mean", 0): 3,
    ("mean", 1): 5,
    ("global_ridge", 0): 6,
    ("global_ridge", 1): 8,
}


def hand_made_run(root: Path) -> Path:
    """A run directory (run.json + records/) of a one-task study, written by hand: no model, no
    training, no evaluation."""
    study = Study(
        name="hand",
        source="base-x",
        target="base-y",
        anchors=["math_add", "math_mul", "code_affine"],
        heldout=["math_sum_more"],
        methods={"mean": {}, "global_ridge": {}},
        n_anchors=[2],
        seeds=[0, 1],
        eval={"n": 10},
    )
    plan = make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"})
    (root / "records").mkdir(parents=True)
    for name, cond in plan.conditions.items():
        key = cond["condition"] if cond["condition"] != "method" else (cond["method"], cond["seed"])
        k = SCORES[key]
        record = {
            "name": name,
            **{f: v for f, v in cond.items() if f != "eval"},
            "eval_key": cond["eval"],
            "scorers": {
                "exact": {"ids": list(range(10)), "correct": [1] * k + [0] * (10 - k), "invalid": [0] * 10}
            },
            "primary": "exact",
        }
        (root / "records" / f"{name}.json").write_text(json.dumps(record))
    write_run_meta(root, study, plan)
    return root


def test_report_numbers_cell_by_cell(tmp_path):
    from loraport.report import build_report

    summary = build_report(hand_made_run(tmp_path / "run"))
    row = summary["tasks"]["math_sum_more"]
    assert (row["base_y"], row["oracle_y"], row["teacher"]) == pytest.approx((0.2, 0.8, 0.9))
    assert row["oracle_minus_base"] == pytest.approx(0.6) and row["usable"]
    agg = {r["variant"]: r for r in summary["aggregates"]}
    assert set(agg) == {"mean", "global_ridge"}
    # gap recovered per seed: (acc − base) / (oracle − base), then the mean over seeds
    assert agg["mean"]["gap_recovered"] == pytest.approx(((0.3 - 0.2) / 0.6 + (0.5 - 0.2) / 0.6) / 2)
    assert agg["global_ridge"]["gap_recovered"] == pytest.approx(((0.6 - 0.2) / 0.6 + (0.8 - 0.2) / 0.6) / 2)
    assert summary["best"]["variant"] == "global_ridge"
    assert summary["best_learned_minus_mean"] == pytest.approx(0.5)
    assert summary["teacher_ceiling"]["per_task"]["math_sum_more"] == pytest.approx((0.9 - 0.2) / 0.6)
    md = (tmp_path / "run" / "report.md").read_text()
    for cell in ("0.333", "0.833"):
        assert cell in md, cell


def test_loraport_report_imports_no_torch(tmp_path):
    run = hand_made_run(tmp_path / "run")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from loraport.cli.main import app\n"
        f"res = CliRunner().invoke(app, ['report', {str(run)!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "report.md").is_file()
