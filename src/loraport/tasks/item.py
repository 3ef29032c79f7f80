"""The unit every task produces and every scorer and evaluator consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One prompt with its reference answer.

    `scorer` names an entry of `loraport.scorers.SCORERS`. Multiple-choice items carry `choices`
    (texts, in letter order A, B, C, ...) and `answer` is the correct letter. Code items carry
    `tests`: Python source with asserts that is appended to the model's program and run in the
    sandbox; `entry_point` is the function name the spec asks for.
    """

    id: str
    prompt: str
    answer: str
    scorer: str
    choices: tuple[str, ...] = ()
    tests: str = ""
    entry_point: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
