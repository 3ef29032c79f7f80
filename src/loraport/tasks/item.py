"""The unit every task produces and every scorer and evaluator consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One prompt with its reference answer.

    `scorer` names an entry of `loraport.scorers.SCORERS`. Multiple-choice items carry `choices`
    (texts, in letter order A, B, C, ...) and `answer` is the correct letter. Code items carry
    `tests`: Python source with asserts that is appended to the model's program and run in the
    sandbox; `entry_point` is the function name the spec asks for. `target` is the completion a
    model is trained to produce when it differs from the scored `answer` (multiple choice: "claws
    (C)" names the choice before its letter); see `completion()`.
    """

    id: str
    prompt: str
    answer: str
    scorer: str
    choices: tuple[str, ...] = ()
    tests: str = ""
    entry_point: str = ""
    target: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def completion(self) -> str:
        """What training teaches the model to write after the prompt."""
        return self.target or self.answer
