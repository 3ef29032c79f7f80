"""Which synthesized prompts to keep: pure functions over text (no model), used by port.synth.

A candidate written by the synthesizing model (few-shot prompted with the user's examples) is kept
only when it passes, in this order (the first failure is its reason, counted in the provenance):

- finished: the model ended it (separator or EOS) within the token budget; a cut-off one is dropped;
- length: its length in characters lies within [(1 − slack)·shortest, (1 + slack)·longest] of the
  examples (slack 0.5 by default);
- format: it contains the examples' template skeleton, the words every example contains, in order
  (numbers masked: any run of digits matches any other), found by folding a longest common
  subsequence over the examples' words. Examples that share nothing give an empty skeleton: no check;
- perplexity: its mean token log-loss under the synthesizing model is at most the highest example's
  plus log(ppl_factor) (perplexity at most ppl_factor = 2 times the least likely example's):
  garbled text is dropped, while text as plausible as the user's own prompts is not;
- eval overlap: it repeats one of the task's eval items (after whitespace normalisation, the check
  port.prompts applies to every prompt set) — dropped here, and the final set is checked again;
- duplicate: its word-bigram Jaccard similarity with an example or an earlier kept prompt is at least
  `jaccard` (0.9 by default). Exact copies score 1; on a 10-word prompt one changed word already
  scores about 0.8, so items that differ in one number are kept, while a long prompt copied with a
  word or two changed is not.

    f = PromptFilter.from_examples(examples, jaccard=0.9)
    reason = f.reason(candidate, nll=2.1)          # None: keep it (and f remembers it as seen)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from loraport.tasks.base import normalize_prompt

_DIGITS = re.compile(r"\d+")


def words(text: str) -> list[str]:
    """Whitespace-split words with every run of digits masked to '0' (numbers are slots)."""
    return _DIGITS.sub("0", text).split()


def lcs(a: list[str], b: list[str]) -> list[str]:
    """A longest common subsequence of two word lists (dynamic programming, O(len(a)·len(b)))."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def skeleton(examples: list[str]) -> list[str]:
    """The words every example contains, in order (digit-masked), by folding LCS over the examples."""
    skel = words(examples[0]) if examples else []
    for e in examples[1:]:
        skel = lcs(skel, words(e))
    return skel


def has_skeleton(text: str, skel: list[str]) -> bool:
    """Whether `skel` is a subsequence of the text's (digit-masked) words."""
    it = iter(words(text))
    return all(any(w == s for w in it) for s in skel)


def length_bounds(examples: list[str], slack: float) -> tuple[float, float]:
    lengths = [len(e) for e in examples]
    return (1 - slack) * min(lengths), (1 + slack) * max(lengths)


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    """Word bigrams of the whitespace-normalised, lower-cased text (unigrams for a one-word text)."""
    ws = text.lower().split()
    n = 2 if len(ws) > 1 else 1
    return frozenset(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class PromptFilter:
    """The keep-or-drop rules above, set from the examples; `seen` grows with every kept prompt."""

    skel: list[str]
    bounds: tuple[float, float]
    max_nll: float | None  # None: no perplexity check
    evals: frozenset[str] = frozenset()  # normalised eval prompts
    jaccard: float = 0.9
    seen: list[frozenset] = field(default_factory=list)

    @classmethod
    def from_examples(
        cls,
        examples: list[str],
        *,
        example_nll: list[float] | None = None,
        evals: set[str] | frozenset[str] = frozenset(),
        slack: float = 0.5,
        ppl_factor: float = 2.0,
        jaccard: float = 0.9,
    ) -> PromptFilter:
        max_nll = None if not example_nll else max(example_nll) + math.log(ppl_factor)
        return cls(
            skel=skeleton(examples),
            bounds=length_bounds(examples, slack),
            max_nll=max_nll,
            evals=frozenset(normalize_prompt(e) for e in evals),
            jaccard=jaccard,
            seen=[shingles(e) for e in examples],
        )

    def reason(self, text: str | None, nll: float | None = None) -> str | None:
        """Why `text` is dropped ("unfinished", "length", "format", "perplexity", "eval overlap",
        "duplicate"), or None when it is kept; a kept text joins `seen`."""
        if text is None or not text.strip():
            return "unfinished"
        lo, hi = self.bounds
        if not lo <= len(text) <= hi:
            return "length"
        if not has_skeleton(text, self.skel):
            return "format"
        if self.max_nll is not None and (nll is None or not nll <= self.max_nll):
            return "perplexity"
        if normalize_prompt(text) in self.evals:
            return "eval overlap"
        sh = shingles(text)
        if any(jaccard(sh, s) >= self.jaccard for s in self.seen):
            return "duplicate"
        self.seen.append(sh)
        return None
