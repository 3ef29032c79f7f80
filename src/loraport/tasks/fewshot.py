"""Few-shot variants of a task: `math_add@2shot` is `math_add` with two solved train items before
every prompt, the way base (not instruct) models are fairly evaluated.

    get_task("math_mul_add@2shot").items("eval", 3)[0].prompt
    # 'ann has 3 bags of 7 pens and 4 more. how many? 25\\nbob has …? 61\\nann has 8 bags …? '

The shots are drawn once per variant from the base task's train split (seed fixed by the variant's
name), so every item of every split carries the same shots and no eval item can be a shot. Each shot
is its prompt, its training completion and a newline. For the log-likelihood scorer the question
without the lettered list gets the same shots, written as question and answer text. A variant is
made the first time its name is asked for (kept out of the registry: `list_tasks` lists only
registered tasks); it has the base task's domain, role and scorers, so a study can name it anywhere
it names a task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from loraport.errors import TaskError
from loraport.tasks.base import LETTERS, Split, Task
from loraport.tasks.item import Item

PATTERN = re.compile(r"^(?P<base>.+)@(?P<k>\d+)shot$")
MAX_SHOTS = 16


@dataclass(frozen=True, kw_only=True)
class FewShotTask(Task):
    base: Task = field(repr=False, compare=False)
    k: int = 1

    def _shots(self) -> list[Item]:
        return self.base.items("train", self.k, seed=hash_seed(self.name))

    def items(self, split: Split, n: int, seed: int = 0) -> list[Item]:
        shots = self._shots()
        prefix = "".join(_shot_text(s) for s in shots)
        question_prefix = "".join(_question_text(s) for s in shots)
        out = []
        for it in self.base.items(split, n, seed):
            meta = {**it.meta, "task": self.name, "shots": self.k}
            if "question" in it.meta and question_prefix:
                meta["question"] = question_prefix + it.meta["question"]
            out.append(
                replace(
                    it, id=it.id.replace(self.base.name, self.name, 1), prompt=prefix + it.prompt, meta=meta
                )
            )
        return out

    def available(self, split: Split) -> int | None:
        return self.base.available(split)


def hash_seed(name: str) -> int:
    import hashlib

    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _shot_text(it: Item) -> str:
    prompt = it.prompt if it.prompt.endswith(("\n", " ")) else it.prompt + " "
    return f"{prompt}{it.completion()}\n"


def _question_text(it: Item) -> str:
    q = it.meta.get("question")
    if q is None or not it.choices:
        return ""
    choice = it.choices[LETTERS.index(it.answer.strip().upper())]
    return f"{q.rstrip()} {choice}\n"


def fewshot_task(name: str) -> Task | None:
    """The few-shot variant `name` names ('<task>@<k>shot'), or None when `name` is not of that form."""
    from loraport.tasks.base import TASKS

    m = PATTERN.match(name)
    if m is None:
        return None
    k = int(m.group("k"))
    if not 1 <= k <= MAX_SHOTS:
        raise TaskError(f"task {name!r}: {k} shots is outside 1..{MAX_SHOTS}")
    base = TASKS.get(m.group("base"))
    avail = base.available("train")
    if avail is not None and avail < k:
        raise TaskError(f"task {name!r}: {base.name!r} has only {avail} train items for {k} shots")
    return FewShotTask(
        name=name,
        domain=base.domain,
        role=base.role,
        description=f"{base.description} ({k}-shot)",
        scorers=base.scorers,
        related=base.related,
        base=base,
        k=k,
    )
