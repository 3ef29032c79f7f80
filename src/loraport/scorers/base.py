"""The verdict type, the scorer registry and `score`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from loraport.errors import TaskError
from loraport.registry import Registry
from loraport.tasks.item import Item

Status = Literal["ok", "invalid"]


@dataclass(frozen=True)
class Verdict:
    """What a scorer made of one prediction.

    correct: the extracted answer matches the reference (always False when invalid).
    extracted: the answer as the scorer read it, normalised (None when invalid).
    status: "ok" (an answer was found; it may be wrong) or "invalid" (no parseable answer), so
    format failures can be counted apart from wrong answers.
    detail: free text: what matched, why it is invalid, the sandbox outcome for code.
    """

    correct: bool
    extracted: str | None
    status: Status = "ok"
    detail: str | None = None

    @classmethod
    def invalid(cls, detail: str) -> Verdict:
        return cls(correct=False, extracted=None, status="invalid", detail=detail)

    @property
    def is_invalid(self) -> bool:
        return self.status == "invalid"


Scorer = Callable[[str, Item], Verdict]

#: Scorers by name: (prediction, item) -> Verdict. A task lists the scorers it is scored by; add
#: one with `@SCORERS.register("name")` on a function (code_exec is also batched, see scorers.code).
#:
#:     SCORERS.get("exact_match")("42", item).correct
SCORERS: Registry[Scorer] = Registry("scorer", TaskError)


def score(prediction: str, item: Item) -> Verdict:
    """Score `prediction` with the scorer the item names."""
    return SCORERS.get(item.scorer)(prediction, item)


def require_text(prediction: object, scorer: str) -> str:
    if not isinstance(prediction, str):
        raise TaskError(f"scorer {scorer!r} needs the prediction as str, got {type(prediction).__name__}")
    return prediction
