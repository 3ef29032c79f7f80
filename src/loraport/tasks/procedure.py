"""Procedure prompts: a task that carries a procedure block (a short step-by-step method for its
skill), and the `<task>@procedure` variant that puts the block before every prompt (issue 21).

    get_task("math_proc_add_sub").items("eval", 1)[0].prompt
    # 'sue had 12 cups, got 7 more, then lost 5. how many now? '
    it = get_task("math_proc_add_sub@procedure").items("eval", 1)[0]
    it.prompt        # 'method: add the gain, then subtract the loss.\\nsue had 12 cups, …? '
    it.completion()  # '12+7=19, 19-5=14. #### 14'   (the worked procedure, then the answer)

The variant keeps the base task's items, answers and item ids after the task name
(`math_proc_add_sub@procedure/eval/<digest of the plain prompt>`), so a plain and a procedure
condition are paired item by item. Training on the variant teaches the worked steps (each item's
`meta["steps"]`) ending in the GSM8K marker, so numeric_strict and numeric_flexible read the same
answer from a compliant output and part ways on a free-form one: the format bias the scorer
agreement tables measure (seed 004).

The procedural tasks are multi-step arithmetic with small numbers, where the zoo's models can
follow two steps. Their role is "procedural", so `anchors: all` / `heldout: all` never pick them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from loraport.errors import TaskError
from loraport.tasks.base import Draft, GeneratedTask, Split, Task, register
from loraport.tasks.item import Item
from loraport.tasks.math import NAMES, OBJECTS, SCORERS, pick, randint, two_names

SUFFIX = "@procedure"
#: The marker before the answer in a worked completion (numeric_strict reads the number after it).
MARKER = "####"


@dataclass(frozen=True, kw_only=True)
class ProcedureTask(Task):
    """`base` with its procedure block before every prompt and worked completions."""

    base: Task = field(repr=False, compare=False)

    def items(self, split: Split, n: int, seed: int = 0) -> list[Item]:
        out = []
        for it in self.base.items(split, n, seed):
            steps = it.meta.get("steps")
            target = f"{steps} {MARKER} {it.answer}" if steps else it.target
            out.append(
                replace(
                    it,
                    id=it.id.replace(self.base.name, self.name, 1),
                    prompt=f"{self.procedure}\n{it.prompt}",
                    target=target,
                    meta={**it.meta, "task": self.name, "procedure": True},
                )
            )
        return out

    def available(self, split: Split) -> int | None:
        return self.base.available(split)


def procedure_task(name: str) -> Task | None:
    """The procedure variant `name` names ('<task>@procedure'), or None when `name` is not of that
    form; TaskError when the task carries no procedure."""
    from loraport.tasks.base import TASKS

    if not name.endswith(SUFFIX):
        return None
    base = TASKS.get(name.removesuffix(SUFFIX))
    if not base.procedure:
        with_one = [n for n in TASKS.names() if TASKS.get(n).procedure]
        raise TaskError(
            f"task {name!r}: {base.name!r} carries no procedure (tasks with one: {', '.join(with_one)})"
        )
    return ProcedureTask(
        name=name,
        domain=base.domain,
        role=base.role,
        description=f"{base.description} (with its procedure)",
        scorers=base.scorers,
        related=base.related,
        procedure=base.procedure,
        base=base,
    )


def pair_id(item_id: str) -> str:
    """An item's id without its task name: equal for the plain and the procedure item."""
    return item_id.split("/", 1)[1] if "/" in item_id else item_id


def _worked(prompt: str, template: str, start: int, ops: list[tuple[str, int]]) -> Draft:
    """A draft whose answer is `start` with each (op, b) of `ops` applied in turn (each step's
    left operand is the previous result), with the worked steps in meta["steps"]."""
    steps, value = [], start
    for op, b in ops:
        new = value + b if op == "+" else value - b if op == "-" else value * b
        steps.append(f"{value}{op}{b}={new}")
        value = new
    expr = str(start) + "".join(f"{op}{b}" for op, b in ops)
    meta = {"expr": expr, "steps": ", ".join(steps) + "."}
    return Draft(prompt, str(value), f"{template}:{expr}", meta=meta)


def _add_sub(rng: np.random.Generator) -> Draft:
    n, o, a, b = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 2, 20), randint(rng, 2, 20)
    c = randint(rng, 1, a + b - 1)
    prompt = f"{n} had {a} {o}, got {b} more, then lost {c}. how many now? "
    return _worked(prompt, "proc_add_sub", a, [("+", b), ("-", c)])


def _mul_add(rng: np.random.Generator) -> Draft:
    n, o = pick(rng, NAMES), pick(rng, OBJECTS)
    a, b, c = randint(rng, 2, 6), randint(rng, 2, 9), randint(rng, 1, 9)
    prompt = f"{n} has {a} bags of {b} {o} plus {c} loose. how many? "
    return _worked(prompt, "proc_mul_add", a, [("*", b), ("+", c)])


def _double_add(rng: np.random.Generator) -> Draft:
    (n, m), o, a, b = two_names(rng), pick(rng, OBJECTS), randint(rng, 2, 30), randint(rng, 1, 20)
    prompt = f"{n} has {a} {o}. {m} has twice as many plus {b}. how many has {m}? "
    return _worked(prompt, "proc_double_add", a, [("+", a), ("+", b)])


_SPECS = [
    (
        "math_proc_add_sub",
        "two steps: add what was got, then subtract what was lost (numbers up to 20)",
        "method: add the gain, then subtract the loss.",
        _add_sub,
    ),
    (
        "math_proc_mul_add",
        "two steps: bags times their size, then add the loose ones (small numbers)",
        "method: multiply bags by size, then add the loose.",
        _mul_add,
    ),
    (
        "math_proc_double_add",
        "two steps: double one count, then add the extra",
        "method: double the first, then add the extra.",
        _double_add,
    ),
]

for _name, _desc, _procedure, _sampler in _SPECS:
    register(
        GeneratedTask(
            name=_name,
            domain="math",
            role="procedural",
            description=_desc,
            scorers=SCORERS,
            procedure=_procedure,
            sampler=_sampler,
        )
    )
