"""Few-shot task variants: `<task>@<k>shot`."""

from __future__ import annotations

import pytest

from loraport.errors import TaskError
from loraport.tasks import get_task, resolve_task
from loraport.tasks.base import normalize_prompt


def test_every_item_carries_the_same_solved_train_shots():
    from loraport.tasks.fewshot import hash_seed

    base, two = get_task("math_mul_add"), get_task("math_mul_add@2shot")
    assert (two.domain, two.role, two.scorers) == (base.domain, base.role, base.scorers)
    plain = base.items("eval", 5, seed=3)
    items = two.items("eval", 5, seed=3)
    shots = base.items("train", 2, seed=hash_seed("math_mul_add@2shot"))
    prefix = "".join(f"{s.prompt}{s.completion()}\n" for s in shots)  # math prompts end with a space
    assert [it.prompt for it in items] == [prefix + p.prompt for p in plain]
    assert [it.answer for it in items] == [p.answer for p in plain]


def test_shots_never_repeat_an_eval_item_and_ids_name_the_variant():
    two = get_task("code_paren@3shot")
    evals = {normalize_prompt(it.prompt.splitlines()[-1]) for it in get_task("code_paren").items("eval", 300)}
    shot_lines = two.items("eval", 1)[0].prompt.splitlines()[:-1]
    assert not {normalize_prompt(s) for s in shot_lines if s.startswith("#")} & evals
    assert two.items("eval", 1)[0].id.startswith("code_paren@3shot/")


def test_loglik_questions_get_the_shots_as_question_and_answer_text():
    from loraport.tasks.base import LETTERS
    from loraport.tasks.fewshot import hash_seed

    it = get_task("sci_context_which@1shot").items("eval", 1)[0]
    (shot,) = get_task("sci_context_which").items("train", 1, seed=hash_seed("sci_context_which@1shot"))
    first, question = it.meta["question"].split("\n")
    assert question == get_task("sci_context_which").items("eval", 1)[0].meta["question"]
    assert first == f"{shot.meta['question']} {shot.choices[LETTERS.index(shot.answer)]}"
    assert "(A)" not in first


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
