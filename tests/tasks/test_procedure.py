"""Procedure prompts (tasks.procedure): the `@procedure` variant pairs item by item with its plain
task, its worked completion scores under both numeric scorers, and a task without one is an error."""

from __future__ import annotations

import pytest

from loraport.errors import TaskError
from loraport.scorers import SCORERS
from loraport.tasks import get_task, list_tasks
from loraport.tasks.procedure import pair_id

PROCEDURAL = list_tasks(role="procedural")


def test_the_procedural_tasks_stay_out_of_the_anchor_and_heldout_lists():
    assert len(PROCEDURAL) >= 3
    assert not set(PROCEDURAL) & set(list_tasks(role="anchor") + list_tasks(role="heldout"))


@pytest.mark.parametrize("name", PROCEDURAL)
def test_variant_pairs_with_the_plain_task(name):
    task = get_task(name)
    plain, proc = task.items("eval", 50, seed=3), get_task(f"{name}@procedure").items("eval", 50, seed=3)
    assert [pair_id(i.id) for i in plain] == [pair_id(i.id) for i in proc]
    assert [i.answer for i in plain] == [i.answer for i in proc]
    for p, q in zip(plain, proc, strict=True):
        assert q.prompt == f"{task.procedure}\n{p.prompt}" and q.id.startswith(f"{name}@procedure/")
        assert p.completion() == p.answer  # plain training teaches the bare answer
        assert q.completion().endswith(f"#### {q.answer}") and "=" in q.completion()
        for scorer in ("numeric_strict", "numeric_flexible"):
            assert SCORERS.get(scorer)(q.completion(), q).correct, (scorer, q.completion())
        assert not SCORERS.get("numeric_strict")(q.completion().split(" ####")[0], q).correct


def test_a_task_without_a_procedure_is_a_one_line_error():
    with pytest.raises(TaskError, match=r"'math_add' carries no procedure \(tasks with one: math_proc") as e:
        get_task("math_add@procedure")
    assert "\n" not in str(e.value)
