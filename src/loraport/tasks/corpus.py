"""A generic pretraining corpus for the tiny model zoo, in the styles of all three domains.

    from loraport.tasks.corpus import pretraining_corpus
    lines = pretraining_corpus(50_000, seed=0)   # short lines, <= 120 characters each

It teaches what the tasks lean on without their formats: knowledge-base facts as plain sentences
("zorbs are red. zorbs have 6 legs."), arithmetic as statements and past-tense stories ("tom had 3
cups. tom got 4 more. now tom has 7 cups."), code as "x*3+1 means x times 3 plus 1" and
"def f(x): return x*3+1  # f(2) is 7" lines built from the anchor code families only, and a little
plain text. It never asks a question: no "how many?", no lettered choices, no "# f(x): spec" prompts,
and no multi-step compositions of the held-out math and code tasks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from loraport.errors import TaskError
from loraport.tasks.base import rng_for
from loraport.tasks.code import ANCHOR_SAMPLERS
from loraport.tasks.kb import KB, sentence
from loraport.tasks.math import NAMES, OBJECTS, pick, randint, two_names

MIX = {"kb": 0.35, "math": 0.35, "code": 0.2, "text": 0.1}

_FACTS: dict[str, list[str]] = defaultdict(list)
for _s, _r, _v in KB.facts():
    _FACTS[_s].append(sentence(_s, _r, _v))


def _kb_line(rng: np.random.Generator) -> str:
    pool = KB.entity_names if rng.random() < 0.85 else KB.kind_names
    facts = _FACTS[pick(rng, pool)]
    k = randint(rng, 1, min(3, len(facts)))
    return " ".join(facts[int(i)] for i in rng.choice(len(facts), size=k, replace=False))


def _math_line(rng: np.random.Generator) -> str:
    (n, other), o = two_names(rng), pick(rng, OBJECTS)
    a, b = randint(rng, 1, 50), randint(rng, 1, 50)
    hi, lo = max(a, b) + 1, min(a, b)
    m, p = randint(rng, 2, 19), randint(rng, 2, 25)
    forms = [
        f"{a} plus {b} is {a + b}.",
        f"{hi} minus {lo} is {hi - lo}.",
        f"{m} times {p} is {m * p}.",
        f"{m * p} shared by {p} is {m}.",
        f"{n} had {a} {o}. {n} got {b} more. now {n} has {a + b} {o}.",
        f"{n} had {hi} {o} and gave away {lo}, so {n} kept {hi - lo}.",
        f"{n} filled {m} bags with {p} {o} each, {m * p} {o} in total.",
        f"{n} split {m * p} {o} among {p} kids and each kid got {m}.",
        f"{n} owns {hi} {o} and {other} owns {lo}, so {n} owns {hi - lo} more.",
    ]
    return pick(rng, tuple(forms))


def _code_line(rng: np.random.Generator) -> str:
    d = ANCHOR_SAMPLERS[int(rng.integers(len(ANCHOR_SAMPLERS)))](rng)
    if rng.random() < 0.5:
        return f"{d.meta['body']} means {d.meta['spec']}."
    call, value = d.tests.splitlines()[0].removeprefix("assert ").split(" == ")
    line = f"{d.answer}  # {call} is {value}"
    return line if len(line) <= 120 else f"{d.meta['body']} means {d.meta['spec']}."


_ADJ = ("little", "old", "happy", "quiet", "fast", "slow", "warm", "cold")
_NOUN = ("dog", "cat", "bird", "tree", "house", "road", "boat", "hill")
_VERB = ("sees", "likes", "finds", "draws", "visits", "paints")


_CAPS = "ABCDEFGH"


def _text_line(rng: np.random.Generator) -> str:
    n, adj, noun, verb = pick(rng, NAMES), pick(rng, _ADJ), pick(rng, _NOUN), pick(rng, _VERB)
    u = rng.random()
    if u < 0.4:
        return f"{n} {verb} a {adj} {noun}. the {noun} is {adj}."
    if u < 0.7:
        return f"{noun} backwards is {noun[::-1]}. {adj} has {len(adj)} letters."
    # Capital letters appear in plain text too (never as lettered choices), so they are known tokens.
    k = int(rng.integers(len(_CAPS) - 1))
    if u < 0.85:
        return f"{n} sits in row {_CAPS[k]}, next to row {_CAPS[k + 1]}."
    return f"the {noun} is in box {_CAPS[k]}. box {_CAPS[k]} is {adj}."


_LINES: dict[str, Callable[[np.random.Generator], str]] = {
    "kb": _kb_line,
    "math": _math_line,
    "code": _code_line,
    "text": _text_line,
}


def pretraining_corpus(n: int, seed: int = 0, mix: dict[str, float] | None = None) -> list[str]:
    """`n` short lines drawn deterministically from (seed, mix); `mix` weights the sources
    "kb", "math", "code" and "text" (default `MIX`)."""
    mix = MIX if mix is None else mix
    unknown = set(mix) - set(_LINES)
    if unknown:
        raise TaskError(f"unknown corpus sources {sorted(unknown)}; valid: {sorted(_LINES)}")
    names = list(mix)
    weights = np.array([mix[k] for k in names], dtype=float)
    rng = rng_for("corpus", seed, *(f"{k}={mix[k]}" for k in names))
    picks = rng.choice(len(names), size=n, p=weights / weights.sum())
    return [_LINES[names[int(i)]](rng) for i in picks]
