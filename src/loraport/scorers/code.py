"""`code_exec`: run the program in the prediction against the item's tests in the sandbox.

The program is taken from the prediction as follows:
- fenced blocks (```python / ```py / ```python3, or untagged ``` when no block is tagged python;
  an unclosed fence runs to the end of the text): the first block that defines item.entry_point,
  else the first block. Blocks in other languages only: invalid.
- no fence: the raw text.
- HumanEval-style completions: when the program does not define item.entry_point but item.prompt
  does, the program is item.prompt + the completion.
Then item.tests is appended and the whole runs via `loraport.sandbox`. Correct iff the sandbox says
"passed" and the program ran to its last line (so a solution that calls sys.exit(0) before the tests
does not pass). The sandbox outcome ("failed: AssertionError", "timed_out", ...) goes in `detail`.
An empty prediction is invalid; code that does not compile is a wrong answer (detail says
SyntaxError), not an invalid one.

Sandbox limits: item.meta may hold "timeout_s" and "memory_mb"; keyword arguments to
`score_code_batch` override both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from loraport.errors import TaskError
from loraport.sandbox import SandboxResult, run_many, run_program
from loraport.scorers.base import SCORERS, Verdict, require_text
from loraport.tasks.item import Item

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n(?P<body>.*?)(?:```|\Z)", re.DOTALL)
_PY_LANGS = {"python", "py", "python3", "py3"}
_META_LIMITS = ("timeout_s", "memory_mb")


def _defines(source: str, name: str) -> bool:
    return (
        bool(name)
        and re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", source, re.M) is not None
    )


def extract_program(prediction: str, item: Item | None = None) -> str | None:
    """The Python program in `prediction` (see the module docstring), or None when there is none."""
    entry = item.entry_point if item is not None else ""
    blocks = [(m.group("lang").lower(), m.group("body")) for m in _FENCE.finditer(prediction)]
    if blocks:
        candidates = [body for lang, body in blocks if lang in _PY_LANGS]
        candidates = candidates or [body for lang, body in blocks if not lang]
        if not candidates:
            return None
        program = next((b for b in candidates if _defines(b, entry)), candidates[0])
    else:
        program = prediction
    if not program.strip():
        return None
    if item is not None and entry and not _defines(program, entry) and _defines(item.prompt, entry):
        program = item.prompt + program
    return program


def _check_item(item: Item) -> None:
    if not item.tests.strip():
        raise TaskError(f"item {item.id!r}: code_exec needs item.tests (asserts to run), got none")


def _limits(item: Item, overrides: dict[str, Any]) -> dict[str, Any]:
    limits = {k: item.meta[k] for k in _META_LIMITS if k in item.meta}
    limits.update(overrides)
    return limits


def _full_source(program: str, item: Item) -> str:
    return program.rstrip("\n") + "\n\n\n" + item.tests.rstrip("\n") + "\n"


def verdict_from_result(program: str, result: SandboxResult) -> Verdict:
    """Verdict for a program that ran: correct iff it passed and reached its last line."""
    correct = result.passed and result.completed
    detail = result.describe()
    if result.passed and not result.completed:
        detail = "passed exit status, but the program exited before its last line (tests not run)"
    return Verdict(correct=correct, extracted=program, detail=detail)


@SCORERS.register("code_exec")
def code_exec(prediction: str, item: Item) -> Verdict:
    """Run the predicted program plus item.tests in the sandbox; correct iff it passes."""
    prediction = require_text(prediction, "code_exec")
    _check_item(item)
    program = extract_program(prediction, item)
    if program is None:
        return Verdict.invalid("no Python program in the prediction")
    return verdict_from_result(program, run_program(_full_source(program, item), **_limits(item, {})))


# Verdicts of programs that ran to a deterministic end (passed, or failed with an exception), keyed by
# the exact source and limits: a study scores the same program (a base's or a near-identical port's
# output) many times. Timeouts and crashes depend on machine load and are always re-run.
_VERDICTS: dict[str, Verdict] = {}
_MEMO_MAX = 200_000


def score_code_batch(
    predictions: Sequence[str], items: Sequence[Item], *, workers: int | None = None, **limits: Any
) -> list[Verdict]:
    """code_exec over many (prediction, item) pairs, run in parallel with `run_many`; verdicts come
    back in input order. `limits` are sandbox limits (timeout_s, memory_mb, ...) for every program."""
    if isinstance(predictions, str) or len(predictions) != len(items):
        n = "a str" if isinstance(predictions, str) else f"{len(predictions)} predictions"
        raise TaskError(f"score_code_batch needs one prediction per item, got {n} for {len(items)} items")
    verdicts: list[Verdict | None] = [None] * len(items)
    groups: dict[tuple, list[tuple[int, str, str]]] = {}
    keys: dict[int, str] = {}
    for i, (prediction, item) in enumerate(zip(predictions, items, strict=True)):
        prediction = require_text(prediction, "code_exec")
        _check_item(item)
        program = extract_program(prediction, item)
        if program is None:
            verdicts[i] = Verdict.invalid("no Python program in the prediction")
            continue
        lim = _limits(item, limits)
        source = _full_source(program, item)
        keys[i] = hashlib.sha256(repr((source, sorted(lim.items()))).encode()).hexdigest()
        if keys[i] in _VERDICTS:
            verdicts[i] = _VERDICTS[keys[i]]
            continue
        groups.setdefault(tuple(sorted(lim.items())), []).append((i, program, source))
    for key, members in groups.items():
        results = run_many([src for _, _, src in members], workers=workers, **dict(key))
        for (i, program, _), result in zip(members, results, strict=True):
            verdicts[i] = verdict_from_result(program, result)
            if result.outcome in ("passed", "failed") and len(_VERDICTS) < _MEMO_MAX:
                _VERDICTS[keys[i]] = verdicts[i]
    return [v for v in verdicts if v is not None]
