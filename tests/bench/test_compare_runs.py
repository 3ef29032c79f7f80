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


def _rec(task, condition, correct, variant=None):
    r = {"task": task, "condition": condition, "domain": "code", "primary": "exact_match"}
    r["scorers"] = {"exact_match": {"correct": correct}}
    if variant:
        r.update(variant=variant, pool="all", n_anchors=4, seed=0)
    return r


def _records(oracle_b):
    """Two tasks of 10 items: base 0, oracle 10/10 on t1 and `oracle_b`/10 on t2; the method gets
    5/10 on t1 and 0/10 on t2."""
    ones, zeros = [1] * 10, [0] * 10
    return [
        _rec("t1", "base_y", zeros),
        _rec("t1", "oracle_y", ones),
        _rec("t1", "method", [1] * 5 + [0] * 5, "global_ridge"),
        _rec("t2", "base_y", zeros),
        _rec("t2", "oracle_y", [1] * oracle_b + [0] * (10 - oracle_b)),
        _rec("t2", "method", zeros, "global_ridge"),
    ]


def test_methods_are_compared_on_the_tasks_usable_in_both_runs():
    from loraport.bench.compare_runs import on_shared_tasks
    from loraport.bench.metrics import aggregate

    ra, rb = _records(oracle_b=10), _records(oracle_b=1)  # t2 falls under the 0.15 bar in run b
    own = [aggregate(r, 0.15)[0]["gap_recovered"] for r in (ra, rb)]
    assert own == [pytest.approx(0.25), pytest.approx(0.5)]  # mean over t1, t2 in a; t1 alone in b
    a, b = on_shared_tasks(summary(), summary(), ra, rb, {"usable_threshold": 0.15})
    assert a["aggregated_over"] == b["aggregated_over"] == ["t1"]
    cmp = compare_runs(a, b)
    (m,) = cmp["methods"]
    assert m["a"] == m["b"] == pytest.approx(0.5) and m["reproduces"]
    md = "\n".join(render(cmp, "native", "default"))
    assert "over the held-out tasks usable in both runs: t1." in md
