"""`exact_match`: the whole prediction equals the reference after light normalisation."""

from __future__ import annotations

from loraport.scorers.base import SCORERS, Verdict, require_text
from loraport.tasks.item import Item


def normalize_text(text: str) -> str:
    """strip + casefold + collapse every run of whitespace to one space."""
    return " ".join(text.split()).casefold()


@SCORERS.register("exact_match")
def exact_match(prediction: str, item: Item) -> Verdict:
    """Prediction and reference equal after `normalize_text`; an empty prediction is invalid."""
    got = normalize_text(require_text(prediction, "exact_match"))
    if not got:
        return Verdict.invalid("empty prediction")
    return Verdict(correct=got == normalize_text(item.answer), extracted=got)
