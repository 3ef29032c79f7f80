"""Scorer agreement against 2×2 tables computed by hand, the kappa paradox, headline shifts on
constructed bench records, and the one-line error for scorers that scored different items."""

from __future__ import annotations

import pytest

from loraport.errors import TaskError
from loraport.evaluate import EvalResult, Record
from loraport.scorers.agreement import Scores, agreement, agreement_by, headline_shifts, table_stats


def column(name: str, correct: list[int], invalid: list[int] | None = None, prefix: str = "t") -> dict:
    return {
        "ids": [f"{prefix}/{i}" for i in range(len(correct))],
        "correct": correct,
        "invalid": invalid or [0] * len(correct),
    }


def record(name: str, condition: str, a: list[int], b: list[int], a_invalid: list[int] | None = None) -> dict:
    task = name.split("__")[0]
    return {
        "name": name,
        "condition": condition,
        "task": task,
        "scorers": {"strict": column("strict", a, a_invalid, task), "judge": column("judge", b, None, task)},
    }


def pairs(both: int, a_only: int, b_only: int, neither: int) -> tuple[list[int], list[int]]:
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return a, b


def test_hand_computed_table():
    # n = 100: both correct 40, A only 10, B only 5, neither 45.
    # p_o = (40 + 45) / 100 = 0.85
    # A correct 50/100 = 0.50, B correct 45/100 = 0.45
    # p_e = 0.50·0.45 + 0.50·0.55 = 0.225 + 0.275 = 0.50  →  κ = (0.85 − 0.50) / (1 − 0.50) = 0.70
    # PABAK = 2·0.85 − 1 = 0.70
    # AC1: π = (0.50 + 0.45)/2 = 0.475, p_e′ = 2·0.475·0.525 = 0.49875
    #      AC1 = (0.85 − 0.49875) / (1 − 0.49875) = 0.35125 / 0.50125 = 0.700748…
    # McNemar exact on 10 vs 5: two-sided binomial, 2·Σ_{k≤5} C(15, k) / 2¹⁵
    #      = 2·(1 + 15 + 105 + 455 + 1365 + 3003) / 32768 = 9888 / 32768 = 0.301758…
    a, b = pairs(40, 10, 5, 45)
    rec = record("t__base", "base", a, b)
    ag = agreement(Scores.of(rec, "strict"), Scores.of(rec, "judge"))
    assert (ag.n, ag.table) == (100, [[40, 10], [5, 45]])
    assert ag.observed == pytest.approx(0.85)
    assert ag.kappa == pytest.approx(0.70)
    assert ag.pabak == pytest.approx(0.70)
    assert ag.ac1 == pytest.approx(0.35125 / 0.50125)
    assert ag.mcnemar_p == pytest.approx(9888 / 32768)
    # the headline shift: 0.50 under A, 0.45 under B
    assert (ag.acc_a, ag.acc_b, ag.shift) == pytest.approx((0.50, 0.45, -0.05))


def test_kappa_paradox():
    # n = 100: 90 both correct, 5 + 5 discordant, none both wrong: the sides agree on 90%.
    # p_o = 0.90; both marginals 0.95, p_e = 0.95² + 0.05² = 0.905
    # κ = (0.90 − 0.905) / (1 − 0.905) = −0.005 / 0.095 = −0.0526… (near zero despite 90% agreement)
    # PABAK = 2·0.90 − 1 = 0.80; AC1: π = 0.95, p_e′ = 2·0.95·0.05 = 0.095, (0.90 − 0.095)/0.905 = 0.8895…
    # McNemar: 5 vs 5 is no bias at all: 2·Σ_{k≤5} C(10, k)/2¹⁰ = 2·638/1024 > 1 → p = 1
    s = table_stats(90, 5, 5, 0)
    assert s["observed"] == pytest.approx(0.90)
    assert s["kappa"] == pytest.approx(-0.005 / 0.095)
    assert s["pabak"] == pytest.approx(0.80)
    assert s["ac1"] == pytest.approx(0.805 / 0.905)
    assert s["mcnemar_p"] == pytest.approx(1.0)


def test_constant_sides_and_systematic_bias():
    # both sides call every item correct: p_e = 1, κ undefined (None), PABAK = AC1 = 1, no discordance
    s = table_stats(20, 0, 0, 0)
    assert s["kappa"] is None and s["pabak"] == 1.0 and s["ac1"] == 1.0 and s["mcnemar_p"] == 1.0
    # B marks correct 12 items A marks wrong and never the reverse: exact p = 2·(1/2)¹² = 1/2048
    s = table_stats(30, 0, 12, 58)
    assert s["mcnemar_p"] == pytest.approx(2 / 4096)


def test_compliance_counts_extractor_invalid_the_judge_accepts():
    # A (strict extractor) marks items 4..9 invalid; the judge accepts 4 of those 6
    a = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    inv = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    b = [1, 1, 0, 0, 1, 1, 1, 1, 0, 0]
    rec = record("t__base", "base", a, b, inv)
    ag = agreement(Scores.of(rec, "strict"), Scores.of(rec, "judge"))
    assert (ag.invalid_a, ag.compliance_n, ag.compliance) == (6, 6, pytest.approx(4 / 6))
    assert "compliance 0.667 of 6 invalid" in ag.line()


def test_per_condition_pooling_and_headline_shift():
    # two tasks × two conditions; "procedure" loses 2 items per task to the extractor that the judge keeps
    records = [
        record("t1__plain", "plain", [1, 1, 0, 0], [1, 1, 0, 0]),
        record("t2__plain", "plain", [1, 0, 0, 0], [1, 0, 0, 0]),
        record("t1__procedure", "procedure", [1, 0, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]),
        record("t2__procedure", "procedure", [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]),
        {"name": "t3__plain", "condition": "plain", "missing": "not computed"},
    ]
    table = agreement_by(records, "strict", "judge", by="condition")
    assert list(table) == ["plain", "procedure"]
    assert table["plain"].n == 8 and table["plain"].observed == 1.0
    proc = table["procedure"]
    # procedure: under strict 1/8 correct, under the judge 5/8; all 4 discordant items favour the judge
    assert (proc.acc_a, proc.acc_b, proc.b_only, proc.a_only) == (1 / 8, 5 / 8, 4, 0)
    assert proc.compliance == 1.0  # every strict-invalid item is one the judge accepts
    shifts = headline_shifts(table, contrasts=[("procedure", "plain")])
    # headline Δ = procedure − plain: strict 1/8 − 3/8 = −0.25, judge 5/8 − 3/8 = +0.25: it flips sign
    (row,) = shifts["contrasts"]
    assert (row["delta_a"], row["delta_b"], row["shift"]) == pytest.approx((-0.25, 0.25, 0.5))
    assert shifts["max_abs_shift"] == pytest.approx(0.5)
    per_cell = agreement_by(records, "strict", "judge")  # by record name
    assert list(per_cell) == ["t1__plain", "t2__plain", "t1__procedure", "t2__procedure"]


def test_eval_results_by_condition():
    def res(flags: list[tuple[int, int]]) -> EvalResult:
        recs = []
        for i, (a, b) in enumerate(flags):
            recs.append(Record(f"t/{i}", "t", "strict", bool(a), "ok", "1", "out", "1"))
            recs.append(Record(f"t/{i}", "t", "judge", bool(b), "ok", "yes", "out", "1", "Yes."))
        return EvalResult("t", recs)

    table = agreement_by(
        {"base": res([(1, 1), (0, 1)]), "port": res([(1, 1), (1, 0), (0, 0)])}, "strict", "judge"
    )
    assert table["base"].table == [[1, 0], [1, 0]] and table["port"].table == [[1, 1], [0, 1]]


def test_different_items_is_a_one_line_error():
    rec = record("t__base", "base", [1, 0, 1], [1, 0, 1])
    rec["scorers"]["judge"]["ids"][2] = "t/other"
    with pytest.raises(TaskError) as err:
        agreement(Scores.of(rec, "strict"), Scores.of(rec, "judge"))
    msg = str(err.value)
    assert "\n" not in msg and "did not score the same items" in msg and "'t/2'" in msg and "'t/other'" in msg


def test_missing_scorer_and_unknown_contrast_are_one_line_errors():
    rec = record("t__base", "base", [1], [1])
    with pytest.raises(TaskError, match=r"no verdicts of scorer 'judge:x' \(scored: judge, strict\)"):
        agreement_by([rec], "strict", "judge:x")
    table = agreement_by([rec], "strict", "judge", by="condition")
    with pytest.raises(TaskError, match="unknown condition 'plain'"):
        headline_shifts(table, contrasts=[("base", "plain")])
