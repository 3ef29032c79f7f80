"""Two runs of one study compared: which method aggregates reproduce, which tasks stay usable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loraport.bench.compare_runs import compare_runs, render

ROOT = Path(__file__).resolve().parents[2]


def summary(name="quick", m1=(0.40, 0.30, 0.50), m2=(0.20, 0.15, 0.25), choice_oracle=0.60):
    def agg(variant, est):
        g, lo, hi = est
        return {"variant": variant, "n_anchors": 8, "pool": "all", "gap_recovered": g, "ci95": [lo, hi]}

    return {
        "study": name,  # as port summaries store it
        "aggregates": [agg("global_ridge", m1), agg("distill[init=zero]", m2)],
        "tasks": {
            "code_paren": {"base_y": 0.0, "oracle_y": 0.5, "teacher": 0.3},
            "sci_context_chain": {"base_y": 0.0, "oracle_y": choice_oracle, "teacher": 0.2},
        },
        "choice": {"tasks": {"sci_context_chain": {"chance": 1 / 3}}},
    }


def test_estimates_inside_each_others_ci_reproduce_and_others_do_not():
    a = summary()
    b = summary(m1=(0.45, 0.35, 0.55), m2=(0.40, 0.30, 0.50), choice_oracle=0.40)
    cmp = compare_runs(a, b)
    by = {m["variant"]: m for m in cmp["methods"]}
    assert by["global_ridge"]["reproduces"] and by["global_ridge"]["diff"] == pytest.approx(0.05)
    assert not by["distill[init=zero]"]["reproduces"] and not cmp["all_reproduce"]
    # the choice task is 26.7 points over chance in run a, 6.7 in run b: not robustly usable
    sci = cmp["tasks"]["sci_context_chain"]
    assert sci["a"]["ok"] and not sci["b"]["ok"] and sci["b"]["oracle_minus_chance"] == pytest.approx(6.7)
    assert cmp["tasks"]["code_paren"]["ok"] and not cmp["all_tasks_ok"]
    md = "\n".join(render(cmp, "native", "default"))
    assert "| global_ridge | 8 | all | 0.400 | 0.300 … 0.500 | 0.450 | 0.350 … 0.550 | +0.050 | yes |" in md
    assert "| sci_context_chain | +60.0 / +40.0 | +26.7 / +6.7 | +20.0 / +20.0 | **no** |" in md


def test_summaries_of_different_studies_are_refused():
    with pytest.raises(ValueError, match="different studies"):
        compare_runs(summary("quick"), summary("demo"))


def test_the_script_compares_two_finished_runs(tmp_path):
    for name, s in (("native", summary()), ("default", summary(m1=(0.41, 0.3, 0.5)))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(s))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "cross_machine.py"), "--out", str(tmp_path / "out")]
    cmd += ["--compare", str(tmp_path / "native"), str(tmp_path / "default")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Every method reproduces: yes" in (tmp_path / "out" / "cross_machine.md").read_text()
