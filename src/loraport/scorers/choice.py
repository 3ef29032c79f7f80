"""`choice_letter`: the answer letter of a generative multiple-choice response.

The valid letters are the first len(item.choices) letters (A-D for four choices). The rules, in
order; the first rule that finds something decides:

1. Answer marker, last occurrence: "answer" (optionally "final/correct/best answer", then "is",
   "would be", ":", "=", "-", "option"/"choice") followed by one letter, which may be wrapped in
   `**`, `*`, `_`, backticks, `$`, `(`, `)`, `[`, `]`, `\\boxed{}`/`\\text{}`:
   "Answer: C", "**Answer:** (b)", "The final answer is $\\boxed{D}$", "answer: b". The letter must
   stand alone (not the start of a word: "Answer: Apple" is no letter). Lowercase is accepted.
   "A"/"a"/"I"/"i" written bare and followed on the same line by a lowercase word are read as the
   English article or pronoun ("the answer is a bit unclear", "Answer: I think ..."), not a letter.
   If the last marker's letter is not a valid letter ("Answer: E" with four choices) the verdict is
   `invalid`: the model answered, but out of range.
2. Letter line: the last line that holds nothing but a valid letter, with optional decorations, a
   leading bullet or "Option"/"Choice", and trailing `.`/`:`: "B", "**(c)**", "Option D.".
3. Restated option: the last non-empty line is "B) <text of choice B>" (also "B.", "(B)", "B:"),
   and no other line starts with a different option head (so a listing of all options is not read
   as an answer).
4. Final word: the response ends (after closing punctuation) in a single valid letter: "so I pick
   C.", "... it has to be (b)". A bare letter here must be uppercase; lowercase needs a wrapper.

Otherwise `invalid`. Never taken: letters inside words ("BANANA" has no B), capitals in the middle
of prose ("I think A is wrong", "vitamin C is ..."), option listings ("A) ... B) ... C) ...").
"""

from __future__ import annotations

import re
import string

from loraport.errors import TaskError
from loraport.scorers.base import SCORERS, Verdict, require_text
from loraport.tasks.item import Item

_OPENERS = "([{*_`$'\"‘“"
_CLOSERS = ")]}*_`$'\"’”"
_LATEX = r"\\(?:boxed|text|textbf|mathrm|mathbf)\{"

_MARKER = re.compile(
    r"\b(?:(?:final|correct|best)\s+)?answer\b"
    r"(?:[\s*_]*(?:is|would\s+be|should\s+be|will\s+be|must\s+be)\b)?"
    r"[\s*_:=\-]*"
    r"(?:(?:option|choice|letter)\s*)?"
    rf"(?:{_LATEX}|[(\[{{`$*_'\"‘“ \t])*"
    r"(?P<letter>[A-Za-z])(?!\w)(?!['’]\w)(?!\.\w)",
    re.IGNORECASE,
)
_LETTER_LINE = re.compile(
    r"[\s*_#>\-(\[{`$]*(?:(?:the\s+)?(?:option|choice|letter)\s*)?"
    rf"(?:{_LATEX})?[\s*_(\[{{`$]*"
    r"(?P<letter>[A-Za-z])[\s*_)\]}`$.:!]*",
    re.IGNORECASE,
)
_OPTION_HEAD = re.compile(r"[\s*_#>\-]*[(\[]?(?P<letter>[A-Za-z])[)\].:]\s+(?P<text>\S.*)")
_FINAL_WORD = re.compile(rf"(?:^|[^\w])(?P<open>(?:{_LATEX}|[(\[{{*_`$'\"‘“])*)(?P<letter>[A-Za-z])$")
_TRAILING = " \t\r\n.!?:;,)]}*_`$'\"’”"
_WORD_LETTERS = "AaIi"


def _norm(text: str) -> str:
    return " ".join(text.replace("*", " ").replace("_", " ").split()).casefold().rstrip(".").strip()


def _decorated(text: str, start: int) -> bool:
    before = text[start - 1] if start > 0 else ""
    after = text[start + 1] if start + 1 < len(text) else ""
    return bool(before) and before in _OPENERS and bool(after) and after in _CLOSERS


def _reads_as_word(text: str, start: int, letter: str) -> bool:
    """A bare A/a/I/i followed on the same line by a lowercase word: the article or pronoun."""
    if letter not in _WORD_LETTERS or _decorated(text, start):
        return False
    return re.match(r"[ \t]+[a-z]", text[start + 1 :]) is not None


def valid_letters(item: Item) -> str:
    """'ABCD' for an item with four choices. Raises TaskError when the item cannot be scored."""
    n = len(item.choices)
    if not 2 <= n <= 26:
        raise TaskError(f"item {item.id!r}: choice_letter needs 2 to 26 choices, got {n}")
    letters = string.ascii_uppercase[:n]
    if item.answer.strip().upper() not in letters:
        raise TaskError(f"item {item.id!r}: reference answer {item.answer!r} is not one of {letters}")
    return letters


def extract_letter(prediction: str, letters: str, choices: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """(letter or None, how it was found or why not). See the module docstring for the rules."""
    # 1. Answer marker, last occurrence.
    last = None
    for m in _MARKER.finditer(prediction):
        if not _reads_as_word(prediction, m.start("letter"), m.group("letter")):
            last = m
    if last is not None:
        letter = last.group("letter").upper()
        if letter not in letters:
            return None, f"answer letter {letter!r} is not one of {letters}"
        return letter, "answer marker"

    lines = [line for line in prediction.splitlines() if line.strip()]
    # 2. A line that is only a letter.
    for line in reversed(lines):
        m = _LETTER_LINE.fullmatch(line)
        if m and m.group("letter").upper() in letters:
            return m.group("letter").upper(), "letter line"

    # 3. The last line restates exactly one option: "B) Paris".
    heads = [(_OPTION_HEAD.fullmatch(line), line) for line in lines]
    if heads and heads[-1][0] is not None and choices:
        m = heads[-1][0]
        letter = m.group("letter").upper()
        others = {h.group("letter").upper() for h, _ in heads[:-1] if h is not None}
        if letter in letters and not others - {letter}:
            said, choice = _norm(m.group("text")), _norm(choices[letters.index(letter)])
            if choice and (said == choice or said.startswith(choice + " ")):
                return letter, "restated option"

    # 4. The response ends in a single letter.
    tail = prediction.rstrip(_TRAILING)
    m = _FINAL_WORD.search(tail)
    if m:
        letter = m.group("letter")
        if letter.isupper() or m.group("open"):
            if letter.upper() not in letters:
                return None, f"final letter {letter.upper()!r} is not one of {letters}"
            return letter.upper(), "final word"
    return None, "no answer letter found"


@SCORERS.register("choice_letter")
def choice_letter(prediction: str, item: Item) -> Verdict:
    """The answer letter (last 'Answer: X'; see the module docstring), compared with item.answer."""
    prediction = require_text(prediction, "choice_letter")
    letters = valid_letters(item)
    letter, how = extract_letter(prediction, letters, item.choices)
    if letter is None:
        return Verdict.invalid(how)
    return Verdict(correct=letter == item.answer.strip().upper(), extracted=letter, detail=how)
