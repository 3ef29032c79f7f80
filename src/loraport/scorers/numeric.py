"""GSM8K-style numeric answers: `numeric_strict` (after a marker) and `numeric_flexible` (last number).

A number is an optional minus (`-` or `−`), an optional `$`, digits either plain (`1234`) or in
comma-separated thousands groups (`1,234,567`), and an optional decimal part (`2.50`). It must not be
glued to a word or follow a decimal point (`step2`, `H2O`, the `3` of `1.2.3` are not numbers); a
minus directly after a word or digit is a hyphen (`3-5` reads 3 and 5). A trailing sentence `.` is
not part of the number. Both sides are normalised (drop `,` and `$`) and compared as Decimal, so
`2.50` equals `2.5` and `1,234` equals `1234`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from loraport.errors import TaskError
from loraport.scorers.base import SCORERS, Verdict, require_text
from loraport.tasks.item import Item

_NUM_BODY = (
    r"(?P<num>(?:(?<![\w.])(?P<neg>[-−]))?\$?(?<![\w.])"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?)"
)
_NUMBER = re.compile(_NUM_BODY)
# Markdown / LaTeX that may sit between a marker and its number: **42**, `42`, $42$, \boxed{42}.
_DECOR = r"[\s*_`:$=]*(?:\\boxed\{|\\\(|\\\[|\\text\{)?[\s*_`$]*"
_STRICT = re.compile(
    r"(?:####|\b(?:the\s+)?(?:final\s+)?answer\s+is\b|\b(?:final\s+)?answer\s*:)" + _DECOR + _NUM_BODY,
    re.IGNORECASE,
)


def _to_decimal(groups: dict[str, str | None]) -> Decimal:
    integer = (groups["int"] or "").replace(",", "")
    frac = groups["frac"] or ""
    value = Decimal(integer + frac)
    return -value if groups["neg"] else value


def _canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _groups(match: re.Match[str]) -> dict[str, str | None]:
    return match.groupdict()


def parse_number(text: str) -> Decimal | None:
    """The number `text` holds (after `####` if present), normalised; None when there is none.
    Used for references: '1,234', '$5', '-2.50', '72.' all parse."""
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    text = text.strip().rstrip(".").strip()
    m = re.fullmatch(r"[\s*_`$]*" + _NUM_BODY + r"[\s*_`$%]*", text)
    if m is None:
        return None
    try:
        return _to_decimal(_groups(m))
    except InvalidOperation:
        return None


def _reference(item: Item) -> Decimal:
    value = parse_number(item.answer)
    if value is None:
        raise TaskError(f"item {item.id!r}: reference answer {item.answer!r} is not a number")
    return value


def _verdict(match: re.Match[str] | None, item: Item, how: str) -> Verdict:
    if match is None:
        return Verdict.invalid(f"no number ({how})")
    g = _groups(match)
    try:
        value = _to_decimal(g)
    except InvalidOperation:
        return Verdict.invalid(f"unparseable number {g['num']!r} ({how})")
    return Verdict(
        correct=value == _reference(item),
        extracted=_canonical(value),
        detail=f"{how}: {g['num'].strip()!r}",
    )


def extract_strict(prediction: str) -> re.Match[str] | None:
    """The number right after the first `####`, `(The) (final) answer is` or `(Final) Answer:`
    (case-insensitive) that is followed by one."""
    return _STRICT.search(prediction)


def extract_flexible(prediction: str) -> re.Match[str] | None:
    """Last number-like span anywhere in the text."""
    last = None
    for last in _NUMBER.finditer(prediction):  # noqa: B007
        pass
    return last


@SCORERS.register("numeric_strict")
def numeric_strict(prediction: str, item: Item) -> Verdict:
    """The number after the first answer marker (`#### 42`, `The answer is 42`, `Answer: 42`)."""
    prediction = require_text(prediction, "numeric_strict")
    _reference(item)
    return _verdict(extract_strict(prediction), item, "after answer marker")


@SCORERS.register("numeric_flexible")
def numeric_flexible(prediction: str, item: Item) -> Verdict:
    """The last number in the output."""
    prediction = require_text(prediction, "numeric_flexible")
    _reference(item)
    return _verdict(extract_flexible(prediction), item, "last number")
