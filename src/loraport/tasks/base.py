"""What a task is, how its items are drawn, and how train and eval are kept apart.

    from loraport.tasks import get_task, check_disjoint
    task = get_task("math_add")
    train = task.items("train", 1500, seed=0)
    test = task.items("eval", 300)
    check_disjoint(task)            # raises TaskError naming the task and a shared prompt

Procedural tasks are configured `GeneratedTask` instances: a sampler draws one `Draft` from a numpy
Generator, and a stable hash of the draft's `key` (the item's identity with surface details such as
names left out) decides once and for all whether that item belongs to train or eval. Because the key
is a function of the prompt, equal prompts always fall on the same side: disjointness is structural,
not a filter applied after the fact.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from loraport.errors import TaskError
from loraport.registry import Registry
from loraport.tasks.item import Item

Split = Literal["train", "eval"]
SPLITS: tuple[str, ...] = ("train", "eval")
DOMAINS: tuple[str, ...] = ("math", "code", "science", "other")
#: "procedural": a task that carries a procedure block (tasks.procedure); kept out of the anchor and
#: held-out lists, so `anchors: all` / `heldout: all` studies plan what they planned before.
ROLES: tuple[str, ...] = ("anchor", "heldout", "procedural")

KNOWN_SCORERS: frozenset[str] = frozenset(
    {"numeric_strict", "numeric_flexible", "exact_match", "choice_letter", "loglik_choice", "code_exec"}
)
CHOICE_SCORERS: frozenset[str] = frozenset({"choice_letter", "loglik_choice"})
LETTERS = "ABCDEFGHIJ"

# Share of the item space (by key hash) reserved for eval; the rest is train.
EVAL_PERCENT = 30


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of the parts' str() forms that is the same in every process (unlike hash())."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_hash(*parts))


def split_of(key: str, salt: str) -> Split:
    """The split an item with this key belongs to; fixed forever for a given (salt, key)."""
    return "eval" if stable_hash("split", salt, key) % 100 < EVAL_PERCENT else "train"


def normalize_prompt(prompt: str) -> str:
    """Prompts that differ only in whitespace count as the same prompt."""
    return " ".join(prompt.split())


def item_id(task: str, split: str, prompt: str) -> str:
    digest = hashlib.blake2b(prompt.encode(), digest_size=6).hexdigest()
    return f"{task}/{split}/{digest}"


class Draft(NamedTuple):
    """One sampled item before it is assigned to a split.

    `key` names the underlying problem without surface details (for math: the template and the
    numbers, not the person's name); it must be a function of the prompt.
    """

    prompt: str
    answer: str
    key: str
    choices: tuple[str, ...] = ()
    tests: str = ""
    entry_point: str = ""
    meta: dict | None = None
    target: str = ""


@dataclass(frozen=True, kw_only=True)
class Task:
    """A named task. `scorers[0]` is the primary scorer, the rest are alternates that also apply.

    `role` is a hint for studies ("anchor", "heldout" or "procedural"); `related` names the anchors
    a held-out task is built to be near; `procedure` is a short step-by-step method for the skill
    (a procedural task's; `<task>@procedure` puts it before every prompt, see tasks.procedure).
    """

    name: str
    domain: str
    role: str
    description: str
    scorers: tuple[str, ...]
    related: tuple[str, ...] = ()
    procedure: str = ""

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise TaskError(f"task {self.name!r}: domain {self.domain!r} is not one of {DOMAINS}")
        if self.role not in ROLES:
            raise TaskError(f"task {self.name!r}: role {self.role!r} is not one of {ROLES}")
        # Scorer names are checked where they come from (generators use KNOWN_SCORERS; loaders take
        # the valid set as a parameter), so a task may name a scorer registered after this module.
        if not self.scorers:
            raise TaskError(f"task {self.name!r}: no scorer")

    @property
    def scorer(self) -> str:
        return self.scorers[0]

    @property
    def alt_scorers(self) -> tuple[str, ...]:
        return self.scorers[1:]

    def items(self, split: Split, n: int, seed: int = 0) -> list[Item]:
        """`n` items of `split` with distinct prompts, the same for the same (task, split, seed)."""
        raise NotImplementedError

    def available(self, split: Split) -> int | None:
        """How many distinct items the split holds, or None when it is effectively unbounded."""
        return None


def check_request(task: str, split: str, n: int) -> None:
    if split not in SPLITS:
        raise TaskError(f"task {task!r}: split {split!r} is not one of {SPLITS}")
    if not isinstance(n, int | np.integer) or n < 0:
        raise TaskError(f"task {task!r}: n must be a non-negative integer, got {n!r}")


@dataclass(frozen=True, kw_only=True)
class GeneratedTask(Task):
    """A procedural task: `sampler(rng) -> Draft`. `salt` names the partition the keys are hashed
    in (default: the task name); tasks that share a salt share their train/eval split of keys."""

    sampler: Callable[[np.random.Generator], Draft] = field(repr=False, compare=False)
    salt: str = ""
    max_draws_per_item: int = 100

    def items(self, split: Split, n: int, seed: int = 0) -> list[Item]:
        check_request(self.name, split, n)
        rng = rng_for("items", self.name, split, seed)
        salt = self.salt or self.name
        out: list[Item] = []
        seen: set[str] = set()
        budget = self.max_draws_per_item * n + 1000
        draws = 0
        while len(out) < n:
            if draws >= budget:
                raise TaskError(
                    f"task {self.name!r}: found only {len(out)} distinct {split} items in {budget} "
                    f"draws; ask for fewer than {n}"
                )
            draws += 1
            d = self.sampler(rng)
            if split_of(d.key, salt) != split:
                continue
            norm = normalize_prompt(d.prompt)
            if norm in seen:
                continue
            seen.add(norm)
            meta = {"task": self.name, "split": split, "key": d.key, **(d.meta or {})}
            out.append(
                Item(
                    id=item_id(self.name, split, d.prompt),
                    prompt=d.prompt,
                    answer=d.answer,
                    scorer=self.scorer,
                    choices=d.choices,
                    tests=d.tests,
                    entry_point=d.entry_point,
                    target=d.target,
                    meta=meta,
                )
            )
        return out


#: Tasks by name (anchor and held-out tasks of every domain). `get_task(name)` also resolves
#: few-shot variants such as "math_add@2shot"; `list_tasks(role=...)` lists the registered ones.
TASKS: Registry[Task] = Registry("task", TaskError)


def register(task: Task) -> Task:
    TASKS.add(task.name, task)
    return task


def get_task(name: str) -> Task:
    """The registered task called `name`; TaskError (with the closest name) when there is none.
    `<task>@<k>shot` names a few-shot variant of a registered task (`loraport.tasks.fewshot`),
    `<task>@procedure` its procedure variant (`loraport.tasks.procedure`),
    made on first use and kept apart from the registry, so that `list_tasks` (and a study's
    `anchors: all`) never depends on which variants a process happened to ask for."""
    if name not in TASKS:
        variant = _VARIANTS.get(name)
        if variant is None:
            from loraport.tasks.fewshot import fewshot_task
            from loraport.tasks.procedure import procedure_task

            variant = fewshot_task(name) or procedure_task(name)
            if variant is not None:
                _VARIANTS[name] = variant
        if variant is not None:
            return variant
    return TASKS.get(name)


_VARIANTS: dict[str, Task] = {}


def list_tasks(domain: str | None = None, role: str | None = None) -> list[str]:
    """Sorted names of registered tasks, optionally only one domain and/or role."""
    return [
        n
        for n in TASKS.names()
        if (domain is None or TASKS.get(n).domain == domain) and (role is None or TASKS.get(n).role == role)
    ]


def check_disjoint(task: Task | str, n_train: int = 2000, n_eval: int = 500, seed: int = 0) -> None:
    """Draw both splits and raise TaskError if any prompt (or, for generated tasks, any item key)
    appears in both. File tasks are checked in full."""
    if isinstance(task, str):
        task = get_task(task)
    sizes = {}
    for split, n in (("train", n_train), ("eval", n_eval)):
        cap = task.available(split)
        sizes[split] = n if cap is None else cap
    train = task.items("train", sizes["train"], seed=seed)
    evals = task.items("eval", sizes["eval"], seed=seed)
    seen = {normalize_prompt(it.prompt) for it in train}
    keys = {it.meta["key"] for it in train if "key" in it.meta}
    for it in evals:
        if normalize_prompt(it.prompt) in seen:
            raise TaskError(f"task {task.name!r}: train and eval share the prompt {it.prompt!r}")
        if "key" in it.meta and it.meta["key"] in keys:
            raise TaskError(
                f"task {task.name!r}: train and eval share the item key {it.meta['key']!r} "
                f"(eval prompt {it.prompt!r})"
            )


def warn_if_small(task: Task | str, n_eval: int, minimum: int = 300) -> bool:
    """Warn (UserWarning naming the task) when fewer than `minimum` eval items will be scored;
    returns whether it warned. At ~300 items the binomial SE is already ~1.7 pp near p=0.1."""
    name = task if isinstance(task, str) else task.name
    if n_eval < minimum:
        warnings.warn(
            f"task {name!r}: only {n_eval} eval items (fewer than {minimum}); accuracy differences "
            "between methods will be noisy",
            UserWarning,
            stacklevel=2,
        )
        return True
    return False
