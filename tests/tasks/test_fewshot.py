"""Few-shot task variants: `<task>@<k>shot`."""

from __future__ import annotations

import pytest

from loraport.errors import TaskError
from loraport.tasks import get_task, resolve_task
from loraport.tasks.base import normalize_prompt


def test_every_item_carries_the_same_solved_train_shots():
    base, two = get_task("math_mul_add"), get_task("math_mul_add@2shot")
    assert (two.domain, two.role, two.scorers) == (base.domain, base.role, base.scorers)
    plain = base.items("eval", 5, seed=3)
    items = two.items("eval", 5, seed=3)
    shots = base.items("train", 2, seed=0)  # not the seed used: shots are fixed by the variant's name
    prefixes = {it.prompt[: -len(p.prompt)] for it, p in zip(items, plain, strict=True)}
    assert len(prefixes) == 1  # one prefix for every item, each item's own prompt after it
    (prefix,) = prefixes
    lines = prefix.splitlines()
    assert len(lines) == 2 and all(any(ch.isdigit() for ch in line.rsplit("?", 1)[1]) for line in lines)
    assert [it.answer for it in items] == [p.answer for p in plain]
    assert shots is not None  # (the draw above only documents that train items are the shot pool)


def test_shots_never_repeat_an_eval_item_and_ids_name_the_variant():
    two = get_task("code_paren@3shot")
    evals = {normalize_prompt(it.prompt.splitlines()[-1]) for it in get_task("code_paren").items("eval", 300)}
    shot_lines = two.items("eval", 1)[0].prompt.splitlines()[:-1]
    assert not {normalize_prompt(s) for s in shot_lines if s.startswith("#")} & evals
    assert two.items("eval", 1)[0].id.startswith("code_paren@3shot/")


def test_loglik_questions_get_the_shots_as_question_and_answer_text():
    it = get_task("sci_context_which@1shot").items("eval", 1)[0]
    first, question = it.meta["question"].split("\n")
    assert question == get_task("sci_context_which").items("eval", 1)[0].meta["question"]
    assert "(A)" not in first and first.endswith(("s", "e")) is not None


def test_bad_variants_are_one_line_errors():
    with pytest.raises(TaskError, match=r"0 shots is outside 1..16"):
        get_task("math_add@0shot")
    with pytest.raises(TaskError, match="math_ad"):
        resolve_task("math_ad@2shot")


def test_variants_stay_out_of_the_task_list():
    from loraport.tasks import list_tasks

    before = list_tasks()
    get_task("math_add@4shot")
    assert list_tasks() == before and "math_add@4shot" not in list_tasks(role="anchor")
    assert get_task("math_add@4shot") is get_task("math_add@4shot")  # made once
