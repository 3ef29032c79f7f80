"""Write a one-line Python function from a short spec in a comment.

    "# g(n): n times 3 plus 1\n" -> "def g(n): return n*3+1"

Items carry `tests` (asserts on several inputs, appended to the model's program by the sandbox) and
`entry_point` (the function name asked for). Expected values in the tests are computed here from
the spec's parameters, independently of the reference program's text. The key is the program with
function and argument names left out. Specs read left to right and only use orders in which Python's
precedence agrees with that reading ("x times 3 plus 1"); "then" marks explicit parentheses.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np

from loraport.tasks.base import Draft, GeneratedTask, register
from loraport.tasks.math import pick, randint

FUNCS = ("f", "g", "h")
INT_ARGS = ("x", "n", "k")
LIST_ARGS = ("xs", "v", "nums")
STR_ARGS = ("s", "w", "t")
PAIRS = (("a", "b"), ("x", "y"), ("m", "n"))
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# word -> (python operator text, function)
OPS: dict[str, tuple[str, Callable]] = {
    "plus": ("+", operator.add),
    "minus": ("-", operator.sub),
    "times": ("*", operator.mul),
    "mod": ("%", operator.mod),
}
CMPS: dict[str, tuple[str, Callable]] = {
    "more than": (">", operator.gt),
    "less than": ("<", operator.lt),
    "equal to": ("==", operator.eq),
}
LIST_FUNCS: dict[str, Callable] = {"sum": sum, "len": len, "max": max, "min": min}
LIST_WORDS = {"sum": "sum", "len": "length", "max": "max", "min": "min"}


def spec_prompt(fn: str, args: tuple[str, ...], spec: str) -> str:
    return f"# {fn}({', '.join(args)}): {spec}\n"


def program(fn: str, args: tuple[str, ...], body: str) -> str:
    return f"def {fn}({', '.join(args)}): return {body}"


def make_tests(fn: str, calls: list[tuple], func: Callable) -> str:
    return "\n".join(f"assert {fn}({', '.join(map(repr, c))}) == {func(*c)!r}" for c in calls) + "\n"


def int_inputs(rng: np.random.Generator, k: int = 5, lo: int = -20, hi: int = 40) -> list[tuple]:
    vals = [0, *rng.choice(np.arange(lo, hi + 1), size=k - 1, replace=False).tolist()]
    return [(int(v),) for v in dict.fromkeys(vals)]


def list_inputs(rng: np.random.Generator, k: int = 4) -> list[tuple]:
    return [([randint(rng, -9, 20) for _ in range(randint(rng, 1, 6))],) for _ in range(k)]


def str_inputs(rng: np.random.Generator, k: int = 4) -> list[tuple]:
    return [("".join(LETTERS[int(i)] for i in rng.integers(26, size=randint(rng, 3, 9))),) for _ in range(k)]


def _code_draft(fn, args, spec, body, key, calls, func) -> Draft:
    return Draft(
        spec_prompt(fn, args, spec),
        program(fn, args, body),
        key,
        tests=make_tests(fn, calls, func),
        entry_point=fn,
        meta={"spec": spec, "body": body},
    )


def _arith1(rng):
    fn, x, word = pick(rng, FUNCS), pick(rng, INT_ARGS), pick(rng, tuple(OPS))
    c = randint(rng, 2, 99) if word == "mod" else randint(rng, 1, 999)
    sym, op = OPS[word]
    calls = int_inputs(rng)
    if word == "mod":  # make sure some remainders are not 0
        calls[1:3] = [(c + 1,), (3 * c - 1,)]
    return _code_draft(fn, (x,), f"{x} {word} {c}", f"{x}{sym}{c}", f"{sym}{c}", calls, lambda v: op(v, c))


def _affine(rng):
    fn, x, a, b = pick(rng, FUNCS), pick(rng, INT_ARGS), randint(rng, 2, 20), randint(rng, 1, 99)
    word = pick(rng, ("plus", "minus"))
    sym, op = OPS[word]
    return _code_draft(
        fn,
        (x,),
        f"{x} times {a} {word} {b}",
        f"{x}*{a}{sym}{b}",
        f"*{a}{sym}{b}",
        int_inputs(rng),
        lambda v: op(v * a, b),
    )


def _two_args(rng):
    fn, (p, q) = pick(rng, FUNCS), PAIRS[int(rng.integers(len(PAIRS)))]
    w1, w2, c = pick(rng, ("plus", "minus", "times")), pick(rng, ("plus", "minus")), randint(rng, 1, 99)
    (s1, op1), (s2, op2) = OPS[w1], OPS[w2]
    swap = bool(rng.random() < 0.5)
    first, second = (q, p) if swap else (p, q)
    calls = [(randint(rng, -9, 20), randint(rng, -9, 20)) for _ in range(5)]

    def func(u, v):
        return op2(op1(v, u) if swap else op1(u, v), c)

    return _code_draft(
        fn,
        (p, q),
        f"{first} {w1} {second} {w2} {c}",
        f"{first}{s1}{second}{s2}{c}",
        f"{'ba' if swap else 'ab'}{s1}{s2}{c}",
        calls,
        func,
    )


def _cond(rng):
    fn, x, cmp = pick(rng, FUNCS), pick(rng, INT_ARGS), pick(rng, tuple(CMPS))
    t = randint(rng, 0, 99)
    yes, no = (int(v) for v in rng.choice(10, size=2, replace=False))
    sym, op = CMPS[cmp]
    calls = [(t - 1,), (t,), (t + 1,), (randint(rng, -20, 120),)]
    return _code_draft(
        fn,
        (x,),
        f"{yes} if {x} is {cmp} {t} else {no}",
        f"{yes} if {x}{sym}{t} else {no}",
        f"{yes}{sym}{t}:{no}",
        calls,
        lambda v: yes if op(v, t) else no,
    )


def _list(rng):
    fn, xs, f = pick(rng, FUNCS), pick(rng, LIST_ARGS), pick(rng, tuple(LIST_FUNCS))
    word = pick(rng, ("plus", "minus", "times"))
    c = randint(rng, 1, 99)
    sym, op = OPS[word]
    agg = LIST_FUNCS[f]
    return _code_draft(
        fn,
        (xs,),
        f"{LIST_WORDS[f]} of {xs} {word} {c}",
        f"{f}({xs}){sym}{c}",
        f"{f}{sym}{c}",
        list_inputs(rng),
        lambda v: op(agg(v), c),
    )


def _string(rng):
    """Six equally likely families; the four small slicing ones share one slot so the large
    literal families do not crowd them out (nor they the literal ones)."""
    fn, s = pick(rng, FUNCS), pick(rng, STR_ARGS)
    family, k = int(rng.integers(6)), randint(rng, 2, 9)
    a, b = (LETTERS[int(i)] for i in rng.choice(26, size=2, replace=False))
    lit = a + b
    inputs = str_inputs(rng)
    if family >= 3:  # make some inputs hit the literal, so the tests tell the programs apart
        inputs[0], inputs[1] = (lit + inputs[0][0],), (inputs[1][0] + lit,)
    spec, body, key, func = [
        [
            (f"{s} repeated {k} times", f"{s}*{k}", f"rep{k}", lambda v: v * k),
            (f"first {k} letters of {s}", f"{s}[:{k}]", f"first{k}", lambda v: v[:k]),
            (f"last {k} letters of {s}", f"{s}[-{k}:]", f"last{k}", lambda v: v[-k:]),
            (f"{s} without its first {k} letters", f"{s}[{k}:]", f"drop{k}", lambda v: v[k:]),
        ][int(rng.integers(4))],
        (f"{s} plus '{lit}'", f"{s}+'{lit}'", f"suffix{lit}", lambda v: v + lit),
        (f"'{lit}' plus {s}", f"'{lit}'+{s}", f"prefix{lit}", lambda v: lit + v),
        (
            f"{s} with '{a}' replaced by '{b}'",
            f"{s}.replace('{a}', '{b}')",
            f"replace{lit}",
            lambda v: v.replace(a, b),
        ),
        (f"{s} starts with '{lit}'", f"{s}.startswith('{lit}')", f"starts{lit}", lambda v: v.startswith(lit)),
        (f"{s} ends with '{lit}'", f"{s}.endswith('{lit}')", f"ends{lit}", lambda v: v.endswith(lit)),
    ][family]
    return _code_draft(fn, (s,), spec, body, key, inputs, func)


def _paren(rng):
    fn, x, a, b = pick(rng, FUNCS), pick(rng, INT_ARGS), randint(rng, 1, 99), randint(rng, 2, 20)
    word = pick(rng, ("plus", "minus"))
    sym, op = OPS[word]
    return _code_draft(
        fn,
        (x,),
        f"{x} {word} {a} then times {b}",
        f"({x}{sym}{a})*{b}",
        f"{sym}{a}*{b}",
        int_inputs(rng),
        lambda v: op(v, a) * b,
    )


def _cond_arith(rng):
    fn, x, cmp = pick(rng, FUNCS), pick(rng, INT_ARGS), pick(rng, ("more than", "less than"))
    t, a, b = randint(rng, 0, 60), randint(rng, 2, 9), randint(rng, 1, 30)
    w2 = pick(rng, ("plus", "minus"))
    sym, op = CMPS[cmp]
    s2, op2 = OPS[w2]
    calls = [(t - 1,), (t,), (t + 1,), (randint(rng, -20, 80),), (randint(rng, -20, 80),)]
    return _code_draft(
        fn,
        (x,),
        f"{x} times {a} if {x} is {cmp} {t} else {x} {w2} {b}",
        f"{x}*{a} if {x}{sym}{t} else {x}{s2}{b}",
        f"*{a}{sym}{t}:{s2}{b}",
        calls,
        lambda v: v * a if op(v, t) else op2(v, b),
    )


def _list_affine(rng):
    fn, xs, f = pick(rng, FUNCS), pick(rng, LIST_ARGS), pick(rng, tuple(LIST_FUNCS))
    a, b, word = randint(rng, 2, 9), randint(rng, 1, 99), pick(rng, ("plus", "minus"))
    sym, op = OPS[word]
    agg = LIST_FUNCS[f]
    return _code_draft(
        fn,
        (xs,),
        f"{LIST_WORDS[f]} of {xs} times {a} {word} {b}",
        f"{f}({xs})*{a}{sym}{b}",
        f"{f}*{a}{sym}{b}",
        list_inputs(rng),
        lambda v: op(agg(v) * a, b),
    )


ANCHOR_SAMPLERS = (_arith1, _affine, _two_args, _cond, _list, _string)

_SPECS = [
    ("code_arith1", "anchor", "one operation on an int: plus/minus/times/mod a constant", _arith1, ()),
    ("code_affine", "anchor", "x times a plus/minus b", _affine, ()),
    ("code_two_args", "anchor", "two arguments combined, then plus/minus a constant", _two_args, ()),
    ("code_cond", "anchor", "conditional expression: p if x compares to t else q", _cond, ()),
    ("code_list", "anchor", "sum/length/max/min of a list, then one operation", _list, ()),
    ("code_string", "anchor", "string slicing, repetition, concatenation, replace, starts/ends", _string, ()),
    (
        "code_paren",
        "heldout",
        "(x plus/minus a) times b, spelled with 'then'",
        _paren,
        ("code_affine", "code_arith1"),
    ),
    (
        "code_cond_arith",
        "heldout",
        "conditional whose branches are arithmetic on x",
        _cond_arith,
        ("code_cond", "code_affine", "code_arith1"),
    ),
    (
        "code_list_affine",
        "heldout",
        "list aggregate times a plus/minus b",
        _list_affine,
        ("code_list", "code_affine"),
    ),
]

for _name, _role, _desc, _sampler, _related in _SPECS:
    register(
        GeneratedTask(
            name=_name,
            domain="code",
            role=_role,
            description=_desc,
            scorers=("code_exec",),
            related=_related,
            sampler=_sampler,
        )
    )
