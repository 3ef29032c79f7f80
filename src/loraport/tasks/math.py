"""Arithmetic word problems with numeric answers (GSM8K in miniature).

    "tom has 3 cups, gets 4, loses 2. how many? " -> "5"

Every prompt ends in "? " and the answer is a bare non-negative integer. The item key is the
template plus the numbers (names and objects left out), so eval asks computations that train
never showed. Anchors are one- and two-step problems; held-out tasks compose them.
"""

from __future__ import annotations

import numpy as np

from loraport.tasks.base import Draft, GeneratedTask, register

NAMES = ("tom", "ann", "bob", "sue", "max", "eva", "sam", "liz", "joe", "kim", "ben", "amy")
OBJECTS = ("apples", "pens", "cards", "eggs", "coins", "books", "cups", "balls", "keys", "hats")
SCORERS = ("numeric_flexible", "numeric_strict")


def randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi], as a Python int (so repr() stays plain)."""
    return int(rng.integers(lo, hi + 1))


def pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def two_names(rng: np.random.Generator) -> tuple[str, str]:
    i, j = rng.choice(len(NAMES), size=2, replace=False)
    return NAMES[int(i)], NAMES[int(j)]


def _draft(prompt: str, template: str, expr: str) -> Draft:
    value = eval(expr, {"__builtins__": {}})  # expr is built here from ints only
    return Draft(prompt, str(value), f"{template}:{expr}", meta={"expr": expr})


def _add(rng):
    n, o, a, b = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 1, 50), randint(rng, 1, 50)
    return _draft(f"{n} has {a} {o} and gets {b} more. how many? ", "add", f"{a}+{b}")


def _sub(rng):
    n, o, a = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 10, 99)
    b = randint(rng, 1, a - 1)
    return _draft(f"{n} has {a} {o} and gives away {b}. how many? ", "sub", f"{a}-{b}")


def _mul(rng):
    n, o, a, b = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 2, 19), randint(rng, 2, 25)
    if rng.random() < 0.5:
        return _draft(f"{n} has {a} bags of {b} {o}. how many? ", "bags", f"{a}*{b}")
    return _draft(f"{n} buys {a} boxes with {b} {o} each. how many? ", "boxes", f"{a}*{b}")


def _div(rng):
    n, o, a, b = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 2, 25), randint(rng, 2, 12)
    if rng.random() < 0.5:
        return _draft(f"{n} shares {a * b} {o} among {b} kids. how many each? ", "share", f"{a * b}//{b}")
    return _draft(f"{n} packs {a * b} {o} in bags of {b}. how many bags? ", "pack", f"{a * b}//{b}")


def _add_sub(rng):
    n, o, a, b = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 1, 40), randint(rng, 1, 40)
    c = randint(rng, 1, a + b - 1)
    return _draft(f"{n} has {a} {o}, gets {b}, loses {c}. how many? ", "add_sub", f"{a}+{b}-{c}")


def _diff(rng):
    (n, m), o, a = two_names(rng), pick(rng, OBJECTS), randint(rng, 5, 99)
    b = randint(rng, 1, a - 1)
    return _draft(f"{n} has {a} {o}, {m} has {b}. how many more has {n}? ", "diff", f"{a}-{b}")


def _mul_add(rng):
    n, o = pick(rng, NAMES), pick(rng, OBJECTS)
    a, b, c = randint(rng, 2, 9), randint(rng, 2, 12), randint(rng, 1, 20)
    return _draft(f"{n} has {a} bags of {b} {o} and {c} more. how many? ", "mul_add", f"{a}*{b}+{c}")


def _mul_add_small(rng):
    n, o = pick(rng, NAMES), pick(rng, OBJECTS)
    a, b, c = randint(rng, 2, 5), randint(rng, 2, 9), randint(rng, 1, 9)
    return _draft(f"{n} has {a} bags of {b} {o} and {c} more. how many? ", "mul_add_small", f"{a}*{b}+{c}")


def _three_step(rng):
    n, o, a, b = pick(rng, NAMES), pick(rng, OBJECTS), randint(rng, 1, 30), randint(rng, 1, 30)
    c, d = randint(rng, 1, a + b - 1), randint(rng, 1, 30)
    return _draft(f"{n} has {a} {o}, gets {b}, loses {c}, gets {d}. how many? ", "three", f"{a}+{b}-{c}+{d}")


def _sum_more(rng):
    (n, m), o, a, b = two_names(rng), pick(rng, OBJECTS), randint(rng, 1, 40), randint(rng, 1, 20)
    return _draft(f"{n} has {a} {o}, {m} has {b} more. how many in all? ", "sum_more", f"{a}+{a}+{b}")


_SPECS = [
    ("math_add", "anchor", "one-step addition word problem, numbers 1-50", _add, ()),
    ("math_sub", "anchor", "one-step subtraction word problem, numbers up to 99", _sub, ()),
    ("math_mul", "anchor", "one-step multiplication (bags/boxes of n), up to 19x25", _mul, ()),
    ("math_div", "anchor", "one-step exact division (share among / pack into bags)", _div, ()),
    ("math_add_sub", "anchor", "two-step word problem: gets some, then loses some", _add_sub, ()),
    ("math_diff", "anchor", "comparison: how many more does one person have than another", _diff, ()),
    (
        "math_mul_add",
        "heldout",
        "two-step: bags of n plus some loose ones (multiply then add)",
        _mul_add,
        ("math_mul", "math_add"),
    ),
    # math_mul_add with numbers the zoo can learn (answers up to 54). Default recipe, 300 eval items,
    # native AVX2 / ATEN_CPU_CAPABILITY=default kernels: base tiny-llama-y 0.007 / 0.007, its oracle
    # 0.237 / 0.280, X + X adapter 0.060 / 0.057, where math_mul_add and math_sum_more stay within a
    # few points of the 10-point bar.
    (
        "math_mul_add_small",
        "heldout",
        "two-step, small numbers: a few bags of n plus some loose ones",
        _mul_add_small,
        ("math_mul", "math_add"),
    ),
    # On the embedded zoo the oracle reaches only ~1% here (three operations on two-digit numbers
    # are beyond the tiny models), so it is an anchor there, not a usable held-out task.
    ("math_three_step", "anchor", "three-step word problem: gets, loses, gets again", _three_step, ()),
    (
        "math_sum_more",
        "heldout",
        "two-step: the other has n more, how many together",
        _sum_more,
        ("math_diff", "math_add"),
    ),
]

for _name, _role, _desc, _sampler, _related in _SPECS:
    register(
        GeneratedTask(
            name=_name,
            domain="math",
            role=_role,
            description=_desc,
            scorers=SCORERS,
            related=_related,
            sampler=_sampler,
        )
    )
