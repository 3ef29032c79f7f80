"""The `infill` way to synthesize prompts (port.synth): rewrite an example's variable words with
the model, keeping its template. For a model too weak to imitate a new format from a listing (the
embedded zoo's tiny bases keep none of 256 listed candidates on its held-out tasks), while it
still writes plausible words in context.

A candidate starts as a random example. Its *slots* are its words outside the examples' template
skeleton (port.prompt_filters.skeleton) plus its numbers, where the word's core (without leading
and trailing punctuation) is all letters or all digits; mixed words (`h(n):`) stay. Each slot is
rewritten with probability 1/2 (at least one per candidate), left to right: the model reads a
few-shot listing of SHOTS examples followed by the candidate so far, samples TRIES short
continuations (temperature 1, seeded), and the first whose first word has a core of the slot's kind
(letters for letters, digits for digits) replaces the core, the punctuation kept; with none, the
word stays. Whatever it writes is then filtered like any candidate.

    parts, slots = slot_words("ben has 3 apples, tom has 4 more.", ["has", "0", "has", "0", "more."])
    [parts[i] for i in slots] == ["ben", "3", "apples,", "tom", "4"]
    graft("apples,", "books and") == "books,"
"""

from __future__ import annotations

import random
import re
from typing import Any

from loraport.port.prompt_filters import words as masked_words

TRIES = 2  # continuations sampled per slot
SHOTS = 4  # examples in the listing before the candidate (a short context keeps a step cheap)
WORD_TOKENS = 5  # tokens a continuation may use to write its first word
_PARTS = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)


def kind(core: str) -> str | None:
    """'digits', 'letters', or None for a core that is neither (or empty)."""
    if core.isdigit():
        return "digits"
    return "letters" if core.isalpha() else None


def slot_words(example: str, skel: list[str]) -> tuple[list[str], list[int]]:
    """The example split into words and the whitespace between them (joined, they give it back),
    and the indices (into that list) of its slots (see the module docstring)."""
    parts = [p for p in re.split(r"(\s+)", example) if p]
    at = [i for i, p in enumerate(parts) if not p.isspace()]
    fixed, j = set(), 0
    for i, w in zip(at, masked_words(example), strict=True):
        if j < len(skel) and w == skel[j]:
            j += 1
            if not any(c.isdigit() for c in parts[i]):
                fixed.add(i)
    return parts, [i for i in at if i not in fixed and kind(_PARTS.match(parts[i]).group(2))]


def graft(word: str, sampled: str) -> str | None:
    """`word` with its core replaced by the first word of `sampled` when that word's core is of the
    same kind; None otherwise."""
    lead, core, trail = _PARTS.match(word).groups()
    first = sampled.split()
    new = _PARTS.match(first[0]).group(2) if first else ""
    return lead + new + trail if new and kind(new) == kind(core) else None


def _continuations(model: Any, tokenizer: Any, ctxs: list[str], seed: int) -> tuple[list[list[str]], int]:
    """TRIES sampled continuations of WORD_TOKENS tokens per context, and the tokens generated."""
    from loraport.port.synth import sample_tokens

    rows = [c for c in ctxs for _ in range(TRIES)]
    new = sample_tokens(model, tokenizer, rows, WORD_TOKENS, seed, pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return [texts[i * TRIES : (i + 1) * TRIES] for i in range(len(ctxs))], int(new.numel())


def infill(
    model: Any, tokenizer: Any, examples: list[str], listings: list[str], skel: list[str], seed: int
) -> tuple[list[str], int]:
    """One candidate per listing (a few-shot listing ending in the separator): a random example
    with slots rewritten. Returns the candidates and the tokens generated."""
    rng = random.Random(seed)
    cands = []
    for _ in listings:
        ws, slots = slot_words(rng.choice(examples), skel)
        picked = [i for i in slots if rng.random() < 0.5] or ([rng.choice(slots)] if slots else [])
        cands.append((ws, picked))
    tokens, step = 0, 0
    while True:
        todo = [(c, picked[step]) for c, (_, picked) in enumerate(cands) if step < len(picked)]
        if not todo:
            break
        ctxs = []
        for c, i in todo:
            ws = cands[c][0]
            lead = _PARTS.match(ws[i]).group(1)
            ctxs.append(listings[c] + "".join(ws[:i]) + lead)
        outs, used = _continuations(model, tokenizer, ctxs, seed * 1_000_003 + step)
        tokens += used
        for (c, i), options in zip(todo, outs, strict=True):
            ws = cands[c][0]
            ws[i] = next((g for g in (graft(ws[i], o) for o in options) if g), ws[i])
        step += 1
    return ["".join(ws) for ws, _ in cands], tokens
