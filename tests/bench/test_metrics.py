"""Metric edge cases, on hand-made records: every case gives a defined, documented result."""

from __future__ import annotations

import pytest

from loraport.bench.metrics import aggregate, gap_recovered, task_rows


def rec(task, condition, correct, **kw):
    r = {
        "name": f"{task}__{condition}__{kw}",
        "task": task,
        "domain": "math",
        "condition": condition,
        "primary": "s",
        "scorers": {
            "s": {
                "ids": [str(i) for i in range(len(correct))],
                "correct": correct,
                "invalid": [0] * len(correct),
            }
        },
    }
    if condition == "method":
        r |= {
            "variant": kw.get("variant", "m"),
            "method": "m",
            "pool": "all",
            "n_anchors": kw.get("n", 4),
            "seed": kw.get("seed", 0),
        }
    return r


def test_gap_recovered_cases():
    assert gap_recovered(0.5, 0.2, 0.8) == pytest.approx(0.5)
    assert gap_recovered(0.1, 0.2, 0.8) == pytest.approx(-1 / 6)  # negative gaps are kept
    assert gap_recovered(0.5, 0.3, 0.3) is None  # oracle = base: undefined, never a division by zero
    assert gap_recovered(None, 0.3, 0.5) is None  # missing cell


def test_usability_oracle_equal_or_below_base():
    records = [
        rec("a", "base_y", [0, 0, 1, 1]),
        rec("a", "oracle_y", [0, 0, 1, 1]),
        rec("b", "base_y", [1, 1, 1, 0]),
        rec("b", "oracle_y", [0, 0, 1, 0]),
        rec("c", "base_y", [0, 0, 0, 0]),
        rec("c", "oracle_y", [1, 1, 1, 1]),
    ]
    rows = task_rows(records, threshold=0.03)
    assert not rows["a"]["usable"] and rows["a"]["why_unusable"] == "oracle equals base"
    assert not rows["b"]["usable"] and rows["b"]["why_unusable"] == "oracle below base"
    assert rows["c"]["usable"] and rows["c"]["oracle_minus_base"] == 1.0 and rows["c"]["why_unusable"] is None
    rows = task_rows(
        [rec("d", "base_y", [0, 1]), rec("e", "base_y", [0, 0]), rec("e", "oracle_y", [0, 1])], 0.6
    )
    assert rows["d"]["why_unusable"] == "missing base or oracle" and rows["d"]["n"] == 2
    assert rows["e"]["why_unusable"] == "oracle − base 0.500 < 0.6"


def test_aggregate_excludes_unusable_tasks_and_handles_one_seed_and_missing_cells():
    records = [
        rec("a", "base_y", [0, 0, 0, 0]),
        rec("a", "oracle_y", [1, 1, 1, 1]),
        rec("b", "base_y", [0, 0, 0, 0]),
        rec("b", "oracle_y", [1, 1, 0, 0]),
        rec("u", "base_y", [1, 0, 0, 0]),
        rec("u", "oracle_y", [1, 0, 0, 0]),  # unusable
        rec("a", "method", [1, 1, 0, 0], seed=0),
        rec("b", "method", [0, 0, 0, 0], seed=0),
        rec("u", "method", [1, 1, 1, 1], seed=0),
        {
            "name": "a__m1",
            "task": "a",
            "domain": "math",
            "condition": "method",
            "variant": "m",
            "method": "m",
            "pool": "all",
            "n_anchors": 4,
            "seed": 1,
            "missing": "port failed",
        },
    ]
    (row,) = aggregate(records, threshold=0.03)
    assert row["usable_tasks"] == ["a", "b"]  # "u" never counts, whatever its method score
    assert row["gap_recovered"] == pytest.approx((0.5 + 0.0) / 2)
    assert row["seeds"] == [0] and row["std"] is None  # one seed: std undefined, not 0
    lo, hi = row["ci95"]
    assert lo <= row["gap_recovered"] <= hi


def test_std_over_seeds_and_negative_aggregate():
    records = [rec("a", "base_y", [1, 1, 0, 0]), rec("a", "oracle_y", [1, 1, 1, 1])]
    records += [rec("a", "method", [0, 0, 0, 0], seed=0), rec("a", "method", [1, 0, 0, 0], seed=1)]
    (row,) = aggregate(records, threshold=0.03)
    assert row["gap_recovered"] == pytest.approx((-1.0 + -0.5) / 2)
    assert row["std"] == pytest.approx(0.3535534, abs=1e-6)


def test_chance_reference_credits_no_format_only_port():
    """base_reference: chance. Base Y never names a letter (0 of 6) on a 3-choice task (chance 1/3);
    a port that answers at chance recovers nothing, not the climb from 0 to chance."""
    chance = {"chance": 1 / 3}
    records = [
        rec("sci", "base_y", [0] * 6) | chance,
        rec("sci", "oracle_y", [1, 1, 1, 1, 0, 0]) | chance,
        rec("sci", "method", [1, 1, 0, 0, 0, 0]) | chance,
        rec("num", "base_y", [0] * 6),  # not a choice task: no chance, never floored
        rec("num", "oracle_y", [1, 1, 1, 0, 0, 0]),
        rec("num", "method", [1, 0, 0, 0, 0, 0]),
    ]
    measured = task_rows(records, 0.03)
    floored = task_rows(records, 0.03, floor=True)
    assert measured["sci"]["base_y"] == 0 and floored["sci"]["base_y"] == pytest.approx(1 / 3)
    assert floored["sci"]["base_y_measured"] == 0 and floored["sci"]["oracle_minus_base"] == pytest.approx(1 / 3)
    assert floored["num"]["base_y"] == 0 == floored["num"]["base_y_measured"]
    (m,) = aggregate(records, 0.03)
    (f,) = aggregate(records, 0.03, floor=True)
    assert m["per_task"]["sci"]["gap_recovered"] == pytest.approx(0.5)
    assert f["per_task"]["sci"]["gap_recovered"] == pytest.approx(0.0)
    assert f["per_task"]["num"]["gap_recovered"] == m["per_task"]["num"]["gap_recovered"] == pytest.approx(1 / 3)
    # an oracle that is only a little above chance stops being usable once the floor applies
    assert not task_rows(records, 0.4, floor=True)["sci"]["usable"] and task_rows(records, 0.4)["sci"]["usable"]
    # a base above chance is its own reference
    above = [rec("sci", "base_y", [1, 1, 1, 0, 0, 0]) | chance, rec("sci", "oracle_y", [1] * 6) | chance]
    assert task_rows(above, 0.03, floor=True)["sci"]["base_y"] == pytest.approx(0.5)
