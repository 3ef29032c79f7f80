"""Scorers on tricky model outputs."""

from __future__ import annotations

import itertools
import math
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loraport.errors import LoraportError, TaskError
from loraport.scorers import (
    SCORERS,
    Verdict,
    choice_letter,
    code_exec,
    exact_match,
    extract_program,
    numeric_flexible,
    numeric_strict,
    parse_number,
    pass_at_k,
    score,
    score_code_batch,
)
from loraport.tasks.item import Item


def num(answer: str) -> Item:
    return Item(id="gsm-1", prompt="?", answer=answer, scorer="numeric_flexible")


MC = Item(id="arc-1", prompt="?", answer="C", scorer="choice_letter", choices=("cat", "dog", "fish", "bird"))


# ------------------------------------------------------------------ registry


def test_registry_holds_every_scorer_and_names_unknown_ones():
    assert SCORERS.names() == [
        "choice_letter",
        "code_exec",
        "exact_match",
        "numeric_flexible",
        "numeric_strict",
    ]
    with pytest.raises(TaskError, match=r"'numeric_strikt'.*did you mean 'numeric_strict'"):
        SCORERS.get("numeric_strikt")
    assert score("#### 7", Item(id="x", prompt="", answer="7", scorer="numeric_strict")).correct


# ------------------------------------------------------------------ numeric


@pytest.mark.parametrize(
    ("prediction", "answer", "strict", "flexible"),
    [
        ("Step 1: 3 + 4 = 7. Step 2: 7 * 2 = 14.\n#### 14", "14", "14", "14"),
        ("She has 5 apples and buys 12 more, so 17 in total. The answer is 17.", "17", "17", "17"),
        ("The answer is **42**.", "42", "42", "42"),
        ("Answer: `42`", "42", "42", "42"),
        ("Final answer: $\\boxed{42}$", "42", "42", "42"),
        ("The total is $1,234.", "1234", None, "1234"),
        ("#### 1,234", "1,234", "1234", "1234"),
        ("It costs $2.50 each.\nThe answer is 2.5", "2.50", "2.5", "2.5"),
        ("The answer is -3 degrees.", "-3", "-3", "-3"),
        ("Temperatures fell from 4 to −8.", "-8", None, "-8"),
        ("Pages 3-5 were read, 3 pages.", "3", None, "3"),
        ("He ran 10 km in step2 of the plan", "10", None, "10"),
        ("The answer is 5 apples. Later: #### 6", "5", "5", "6"),
        ("1,000,000 dollars. The answer is 1000000.", "1000000", "1000000", "1000000"),
        ("0.5 + 0.25 = 0.75.", "0.75", None, "0.75"),
        ("The answer is 72.", "#### 72", "72", "72"),
    ],
)
def test_numeric_extraction(prediction, answer, strict, flexible):
    s, f = numeric_strict(prediction, num(answer)), numeric_flexible(prediction, num(answer))
    assert s.extracted == strict
    assert f.extracted == flexible
    ref = parse_number(answer)
    assert s.correct == (strict is not None and Decimal(strict) == ref)
    assert f.correct == (Decimal(flexible) == ref)
    assert s.status == ("ok" if strict is not None else "invalid")


def test_numeric_several_numbers_strict_takes_first_marker_flexible_takes_last():
    text = "Answer: 12. Wait, I made a mistake: 3 * 4 = 12, plus 2 is 14."
    assert numeric_strict(text, num("14")).extracted == "12"
    assert numeric_flexible(text, num("14")).extracted == "14"
    assert numeric_flexible(text, num("14")).correct


def test_numeric_invalid_is_not_wrong():
    no_number = numeric_flexible("I cannot solve this.", num("3"))
    assert no_number == Verdict(correct=False, extracted=None, status="invalid", detail=no_number.detail)
    wrong = numeric_flexible("It is 4.", num("3"))
    assert (wrong.correct, wrong.status, wrong.extracted) == (False, "ok", "4")
    # lm-eval's flexible regex would take "..." here; a number needs a digit.
    assert numeric_flexible("The answer is 7...", num("7")).extracted == "7"


def test_numeric_compares_as_decimal():
    assert numeric_flexible("2.50", num("2.5")).correct
    assert numeric_flexible("42.0", num("42")).correct
    assert not numeric_flexible("42.01", num("42")).correct
    assert numeric_flexible("-0", num("0")).correct
    assert parse_number("$1,234.50.") == Decimal("1234.5")
    assert parse_number("#### -7") == Decimal(-7)
    assert parse_number("seven") is None


def test_numeric_bad_reference_raises_naming_item():
    with pytest.raises(TaskError, match=r"gsm-1.*'seven'"):
        numeric_flexible("7", num("seven"))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-(10**9), max_value=10**9), st.sampled_from(["{:,}", "{}", "${:,}", "**{}**"]))
def test_numeric_flexible_recovers_formatted_integers(value, fmt):
    text = f"Some reasoning with 3 numbers and 17 more. So the result is {fmt.format(value)}."
    verdict = numeric_flexible(text, num(str(value)))
    assert verdict.correct, (text, verdict)


# ------------------------------------------------------------------ exact match


def test_exact_match_normalises_case_and_whitespace():
    item = Item(id="e", prompt="", answer="New  York City", scorer="exact_match")
    assert exact_match("  new york\n city ", item).correct
    assert not exact_match("New York", item).correct
    assert exact_match("   ", item).status == "invalid"


# ------------------------------------------------------------------ choice letter


@pytest.mark.parametrize(
    ("prediction", "extracted"),
    [
        ("I think A is wrong, Answer: C", "C"),
        ("Answer: C", "C"),
        ("answer: c", "C"),
        ("**Answer:** (c)", "C"),
        ("The correct answer is **C**.", "C"),
        ("The final answer is $\\boxed{C}$", "C"),
        ("Answer: A\n...on reflection, fish live in water.\nAnswer: C", "C"),
        ("Answer: I think it has to be C", "C"),
        ("Let me think.\n\n**(C)**\n", "C"),
        ("C", "C"),
        ("Option C.", "C"),
        ("C) fish", "C"),
        ("so I pick C.", "C"),
        ("it has to be (c).", "C"),
        ("The answer is 'C'.", "C"),
        ("Answer: D", "D"),
    ],
)
def test_choice_letter_found(prediction, extracted):
    verdict = choice_letter(prediction, MC)
    assert verdict.status == "ok", verdict
    assert verdict.extracted == extracted
    assert verdict.correct == (extracted == "C")


@pytest.mark.parametrize(
    "prediction",
    [
        "BANANA",  # letters inside a word
        "A cat is a pet, so that one.",  # article
        "I am not sure.",  # pronoun
        "The answer is a bit unclear to me.",  # article after a marker
        "Vitamin C is important for fish.",  # capital in the middle of prose
        "A) cat\nB) dog\nC) fish\nD) bird",  # a listing of the options
        "Answer: Apple",  # a word, not a letter
        "",
        "I think A is wrong.",
    ],
)
def test_choice_letter_invalid_not_guessed(prediction):
    verdict = choice_letter(prediction, MC)
    assert verdict.status == "invalid", verdict
    assert verdict.extracted is None and not verdict.correct


def test_choice_letter_only_valid_letters_and_invalid_apart_from_wrong():
    out_of_range = choice_letter("Answer: E", MC)
    assert out_of_range.status == "invalid" and "'E'" in out_of_range.detail
    wrong = choice_letter("Answer: B", MC)
    assert (wrong.status, wrong.correct, wrong.extracted) == ("ok", False, "B")
    five = Item(id="f", prompt="", answer="E", scorer="choice_letter", choices=tuple("vwxyz"))
    assert choice_letter("Answer: E", five).correct
    # "I" is a valid letter only with nine or more choices, and never as the pronoun.
    nine = Item(id="n", prompt="", answer="I", scorer="choice_letter", choices=tuple("abcdefghi"))
    assert choice_letter("Answer: I", nine).correct
    assert choice_letter("I believe so.", nine).status == "invalid"


def test_choice_letter_bad_items_raise():
    with pytest.raises(TaskError, match=r"arc-2.*'Z'"):
        choice_letter(
            "Answer: A", Item(id="arc-2", prompt="", answer="Z", scorer="choice_letter", choices=("a", "b"))
        )
    with pytest.raises(TaskError, match=r"arc-3.*got 0"):
        choice_letter("Answer: A", Item(id="arc-3", prompt="", answer="A", scorer="choice_letter"))


# ------------------------------------------------------------------ code


ADD = Item(
    id="mbpp-1",
    prompt='def add(a, b):\n    """Return a + b."""\n',
    answer="",
    scorer="code_exec",
    tests="assert add(1, 2) == 3\nassert add(-1, 1) == 0\n",
    entry_point="add",
    meta={"timeout_s": 2.0},
)


def test_code_extraction_fenced_and_raw():
    fenced = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nUsage:\n```python\nprint(add(1, 2))\n```"
    assert extract_program(fenced, ADD) == "def add(a, b):\n    return a + b\n"
    usage_first = "```python\nprint(add(1, 2))\n```\n```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_program(usage_first, ADD).startswith("def add")
    assert extract_program("```\ndef add(a, b):\n    return a + b\n```", ADD).startswith("def add")
    assert extract_program("```python\ndef add(a, b):\n    return a + b\n", ADD).startswith(
        "def add"
    )  # unclosed
    assert extract_program("def add(a, b):\n    return a + b\n", ADD).startswith("def add")
    # HumanEval-style completion: the body only, the signature is in the prompt.
    assert extract_program("    return a + b\n", ADD) == ADD.prompt + "    return a + b\n"
    assert extract_program("```bash\nrm -rf /\n```", ADD) is None
    assert extract_program("  \n", ADD) is None


def test_code_exec_outcomes():
    ok = code_exec("```python\ndef add(a, b):\n    return a + b\n```", ADD)
    assert ok.correct and ok.status == "ok" and ok.detail == "passed"
    raw = code_exec("def add(a, b):\n    return a + b\n", ADD)
    assert raw.correct
    completion = code_exec("    return a + b\n", ADD)
    assert completion.correct
    wrong = code_exec("```python\ndef add(a, b):\n    return a - b\n```", ADD)
    assert not wrong.correct and wrong.status == "ok"
    assert wrong.detail == "failed: AssertionError"
    syntax = code_exec("```python\ndef add(a, b)\n    return a + b\n```", ADD)
    assert not syntax.correct and syntax.detail.startswith("failed: SyntaxError")
    exits = code_exec("```python\nimport sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n```", ADD)
    assert not exits.correct and "exited before its last line" in exits.detail
    empty = code_exec("", ADD)
    assert empty.status == "invalid" and not empty.correct


def test_code_that_loops_forever_times_out():
    start = time.monotonic()
    verdict = code_exec("```python\ndef add(a, b):\n    while True:\n        pass\n```", ADD)
    assert not verdict.correct and verdict.status == "ok"
    assert verdict.detail == "timed_out"
    assert time.monotonic() - start < 5.0


def test_code_item_without_tests_raises():
    with pytest.raises(TaskError, match=r"mbpp-2.*tests"):
        code_exec("def f(): pass", Item(id="mbpp-2", prompt="", answer="", scorer="code_exec"))


def test_score_code_batch_in_order():
    predictions = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a * b\n```",
        "no code here```text\nhello\n```",
        "def add(a, b):\n    while True: pass\n",
        "    return b + a\n",
    ]
    items = [ADD] * len(predictions)
    verdicts = score_code_batch(predictions, items, timeout_s=1.5)
    assert [v.correct for v in verdicts] == [True, False, False, False, True]
    assert [v.status for v in verdicts] == ["ok", "ok", "invalid", "ok", "ok"]
    assert verdicts[3].detail == "timed_out"
    with pytest.raises(TaskError, match="2 predictions for 1 items"):
        score_code_batch(predictions[:2], [ADD])
    assert score_code_batch([], []) == []


# ------------------------------------------------------------------ pass@k


def _pass_at_k_brute(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_brute(n, c, k))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(200, 0, 100) == 0.0
    assert pass_at_k(200, 200, 1) == 1.0
    big = pass_at_k(1000, 1, 500)
    assert math.isclose(big, 0.5)


def test_pass_at_k_rejects_bad_arguments():
    for args in [(5, 6, 1), (5, 1, 0), (5, 1, 6), (0, 0, 1), (5.0, 1, 1)]:
        with pytest.raises(LoraportError):
            pass_at_k(*args)


def test_code_verdicts_are_remembered_only_for_deterministic_outcomes(monkeypatch):
    import loraport.scorers.code as code_mod
    from loraport.tasks import get_task

    items = get_task("code_affine").items("eval", 3)
    ep = [it.entry_point for it in items]
    preds = [items[0].answer, f"def {ep[1]}(*a):\n    return 0.5", f"def {ep[2]}(*a):\n    while True: pass"]
    calls = []
    real = code_mod.run_many

    def counting(sources, **kw):
        calls.append(len(sources))
        return real(sources, **kw)

    monkeypatch.setattr(code_mod, "run_many", counting)
    monkeypatch.setattr(code_mod, "_VERDICTS", {})
    first = code_mod.score_code_batch(preds, items, timeout_s=1.0)
    again = code_mod.score_code_batch(preds, items, timeout_s=1.0)
    assert [v.correct for v in first] == [v.correct for v in again] == [True, False, False]
    assert calls == [3, 1]  # only the timed-out program runs again
