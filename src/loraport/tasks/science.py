"""Multiple-choice questions over the invented-animal knowledge base (`loraport.tasks.kb`).

    "what color are zorbs? blue (A) red (B) green (C) pink (D)\n" -> "B" (trained on "red (B)")

The answer is the letter; `choices` holds the texts in letter order and `meta["question"]` the
question without them (for log-likelihood scoring). Each choice is followed by its letter and the
training target names the choice before its letter, so a model reads the letter off the list the
way it copies any token that followed a word it has seen (an induction pattern tiny models learn);
with letters before the choices, the 1M-parameter zoo models only learned the letters' prior. Tasks differ by relation family, by the number
of hops (entity -> kind -> habitat), by whether the facts are given in the prompt (open book) or must
be recalled from pretraining (closed book), and by direction (which entity has a property). Every
entity-level task keys its items by the entity and hashes keys in one shared partition, so the
entities asked about in eval are the same across tasks and never asked about in any train split.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from loraport.tasks.base import LETTERS, Draft, GeneratedTask, register
from loraport.tasks.kb import KB, KIND_RELATIONS
from loraport.tasks.math import pick

SCORERS = ("choice_letter", "loglik_choice")
ENTITY_SALT = "science-entities"

QUESTIONS = {
    "color": "what color are {s}?",
    "size": "how big are {s}?",
    "legs": "how many legs do {s} have?",
    "kind": "what kind are {s}?",
    "habitat": "where do {s} live?",
    "diet": "what do {s} eat?",
    "part": "what do {s} have?",
}
# Cloze forms for open-book prompts, where space is tight.
CLOZES = {
    "color": "{s} are?",
    "size": "{s} are?",
    "habitat": "{s} live in?",
    "diet": "{s} eat?",
    "part": "{s} have?",
}
VERBS = {"habitat": "live in", "diet": "eat", "part": "have"}


def multiple_choice(
    rng: np.random.Generator,
    question: str,
    correct: str,
    pool: tuple[str, ...],
    k: int = 4,
    forced: tuple[str, ...] = (),
    meta: dict | None = None,
    key: str = "",
) -> Draft:
    """A Draft asking `question` with `correct` among k shuffled choices; distractors are the
    `forced` ones first, then random others from `pool`."""
    others = [v for v in pool if v != correct and v not in forced]
    need = k - 1 - len(forced)
    picks = [others[int(i)] for i in rng.choice(len(others), size=need, replace=False)]
    options = [correct, *forced, *picks]
    choices = tuple(options[int(i)] for i in rng.permutation(k))
    listed = " ".join(f"{c} ({letter})" for letter, c in zip(LETTERS, choices, strict=False))
    meta = {"question": question, **(meta or {})}
    letter = LETTERS[choices.index(correct)]
    return Draft(
        f"{question} {listed}\n", letter, key, choices=choices, meta=meta, target=f"{correct} ({letter})"
    )


@cache
def _without(relation: str, value: str) -> tuple[str, ...]:
    """Entities whose `relation` is not `value`."""
    return tuple(e for e in KB.entity_names if KB.lookup(e, relation) != value)


def _closed(relation: str):
    def sample(rng):
        s = pick(rng, KB.entity_names)
        v = KB.lookup(s, relation)
        meta = {"subject": s, "relation": relation, "value": v}
        return multiple_choice(rng, QUESTIONS[relation].format(s=s), v, KB.values(relation), meta=meta, key=s)

    return sample


def _kind_facts(rng):
    k, rel = pick(rng, KB.kind_names), pick(rng, KIND_RELATIONS)
    v = KB.lookup(k, rel)
    meta = {"subject": k, "relation": rel, "value": v}
    return multiple_choice(rng, QUESTIONS[rel].format(s=k), v, KB.values(rel), meta=meta, key=f"{k}:{rel}")


def _context(rng):
    rel = pick(rng, ("color", "size"))
    s = pick(rng, KB.entity_names)
    v = KB.lookup(s, rel)
    d = pick(rng, _without(rel, v))
    dv = KB.lookup(d, rel)
    facts = [f"{s} are {v}.", f"{d} are {dv}."]
    if rng.random() < 0.5:
        facts.reverse()
    question = f"{' '.join(facts)} {CLOZES[rel].format(s=s)}"
    meta = {"subject": s, "relation": rel, "value": v, "distractor": d}
    return multiple_choice(rng, question, v, KB.values(rel), forced=(dv,), meta=meta, key=s)


def _inherit(rng):
    s, rel = pick(rng, KB.entity_names), pick(rng, KIND_RELATIONS)
    v = KB.lookup(s, rel)
    meta = {"subject": s, "relation": rel, "value": v, "stated": KB.states_inherited(s)}
    return multiple_choice(rng, QUESTIONS[rel].format(s=s), v, KB.values(rel), meta=meta, key=s)


def _which(rng):
    rel = pick(rng, ("color", "size"))
    s = pick(rng, KB.entity_names)
    v = KB.lookup(s, rel)
    pool = _without(rel, v)
    meta = {"subject": s, "relation": rel, "value": v, "reverse": True}
    return multiple_choice(rng, f"which are {v}?", s, pool, meta=meta, key=s)


def _context_chain(rng):
    s, rel = pick(rng, KB.entity_names), pick(rng, KIND_RELATIONS)
    kind = KB.lookup(s, "kind")
    v = KB.lookup(kind, rel)
    question = f"{s} are {kind}. {kind} {VERBS[rel]} {v}. {CLOZES[rel].format(s=s)}"
    meta = {"subject": s, "relation": rel, "value": v}
    return multiple_choice(rng, question, v, KB.values(rel), k=3, meta=meta, key=s)


def _context_which(rng):
    rel = pick(rng, ("color", "size"))
    s = pick(rng, KB.entity_names)
    v = KB.lookup(s, rel)
    d = pick(rng, _without(rel, v))
    facts = [f"{s} are {v}.", f"{d} are {KB.lookup(d, rel)}."]
    if rng.random() < 0.5:
        facts.reverse()
    meta = {"subject": s, "relation": rel, "value": v, "reverse": True, "distractor": d}
    question = f"{' '.join(facts)} which are {v}?"
    return multiple_choice(rng, question, s, _without(rel, v), k=3, forced=(d,), meta=meta, key=s)


_SPECS = [
    ("sci_color", "anchor", "closed book: the color of an animal", _closed("color"), (), ENTITY_SALT),
    ("sci_size", "anchor", "closed book: the size of an animal", _closed("size"), (), ENTITY_SALT),
    ("sci_legs", "anchor", "closed book: how many legs an animal has", _closed("legs"), (), ENTITY_SALT),
    ("sci_kind", "anchor", "closed book: which kind an animal belongs to", _closed("kind"), (), ENTITY_SALT),
    (
        "sci_kind_facts",
        "anchor",
        "closed book: habitat, diet or body part of a kind",
        _kind_facts,
        (),
        "",
    ),
    (
        "sci_context",
        "anchor",
        "open book: two facts in the prompt, answer for one (the other is the distractor)",
        _context,
        (),
        ENTITY_SALT,
    ),
    # Closed-book compositions: on the embedded zoo their oracles stay at chance (the tiny models
    # do not memorise the knowledge base well enough to compose it), so they serve as anchors.
    (
        "sci_inherit",
        "anchor",
        "closed book, two hops: an animal's habitat, diet or part via its kind",
        _inherit,
        (),
        ENTITY_SALT,
    ),
    (
        "sci_which",
        "anchor",
        "closed book, reversed: which animal has a given color or size",
        _which,
        (),
        ENTITY_SALT,
    ),
    (
        "sci_context_which",
        "heldout",
        "open book, reversed: two facts in the prompt, which animal has the asked property",
        _context_which,
        ("sci_context", "sci_which"),
        ENTITY_SALT,
    ),
    (
        "sci_context_chain",
        "heldout",
        "open book, two hops chained in the prompt, 3 choices",
        _context_chain,
        ("sci_context", "sci_kind_facts", "sci_kind"),
        ENTITY_SALT,
    ),
]

for _name, _role, _desc, _sampler, _related, _salt in _SPECS:
    register(
        GeneratedTask(
            name=_name,
            domain="science",
            role=_role,
            description=_desc,
            scorers=SCORERS,
            related=_related,
            sampler=_sampler,
            salt=_salt,
        )
    )
