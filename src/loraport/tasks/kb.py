"""A fixed, seeded knowledge base of invented animals, for the science tasks and the pretraining
corpus.

    from loraport.tasks.kb import KB, kb_sentences
    KB.lookup("zorbs", "color")      # -> "red"
    KB.lookup("zorbs", "habitat")    # two hops: zorbs are blics, blics live in caves -> "caves"
    list(kb_sentences())[:3]         # ["blics live in caves.", "blics eat moss.", ...]

Kinds (32) have a habitat, a diet and a body part; entities (300) have a kind, a color, a size and a
number of legs, and inherit their kind's habitat, diet and part. Everything is named by its plural
("zorbs", "blics"), which is the form the sentences and questions use. The corpus states every
direct fact, and states the inherited (two-hop) facts for half of the entities only, so closed-book
two-hop questions are partly recall and partly composition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from loraport.tasks.base import stable_hash

KB_SEED = 1729
N_KINDS = 32
N_ENTITIES = 300

COLORS = ("red", "blue", "green", "pink", "gray", "tan", "gold", "black")
SIZES = ("tiny", "small", "big", "huge")
LEGS = ("2", "4", "6", "8")
HABITATS = ("caves", "trees", "lakes", "hills", "sand", "mud", "ice", "reefs")
DIETS = ("seeds", "fish", "moss", "bugs", "fruit", "grass", "worms", "nuts")
PARTS = ("fins", "wings", "horns", "claws", "tails", "spots", "fur", "beaks")

ENTITY_RELATIONS = ("color", "size", "legs", "kind")
KIND_RELATIONS = ("habitat", "diet", "part")

SENTENCES = {
    "color": "{s} are {v}.",
    "size": "{s} are {v}.",
    "legs": "{s} have {v} legs.",
    "kind": "{s} are {v}.",
    "habitat": "{s} live in {v}.",
    "diet": "{s} eat {v}.",
    "part": "{s} have {v}.",
}

# Words the tasks use; invented names must not collide with them.
_RESERVED = {
    *COLORS, *SIZES, *HABITATS, *DIETS, *PARTS,
    "are", "have", "live", "eat", "what", "kind", "color", "many", "legs", "how", "big", "where",
    "which", "do", "in", "of", "the", "more", "gets", "has", "loses", "bags", "kids", "then", "else",
}  # fmt: skip

# English words (or their plurals) that the name patterns can form, listed once from the whole-word
# tokens of a BPE vocabulary plus a few by hand: names must read as invented, to real checkpoints too.
_ENGLISH_TEXT = """
bald band bang bank barb barg bark belt bend bent bind bird blat blem blob blog blot bold bolt bond
bran bred brid brig brim brit brom bron brut bulb bulk bund bunk burd burg dang dark dart dend dent
dirt dont dorm drag dram dred drip drop drug drum dung fant farm fart felt fend fert film filt find
fing firm flag flap flat fled flip fold folk fond font forb forg fork form fort fund fung gang gard
gent germ ging gird glad glam glob glut gold grab grad gram gran grat gren grid grim grip grit kelp
kind king malt mand mang mant marg mark mart melt mend ment merg mild milk mind mint mold monk mont
morb mort mult mund murd narg nond norm nort nurt palm palp pand pang pant park part pend pent perk
perm pert ping pink pint plag plan plat plot plug plum plut pond pont pork port prag preb pred prem
prep pret prim prin prob prod prog prom pron prop prot prud pulp pung punk salt sand sang sank sard
send sent serm silk silt sing sink slab sled slim slip slit slog slot slug slum snap snug sold song
sort spam span spat spin spit spok spon spot spun sund sung sunk surg talk tang tank tant tart tend
tent term tilt tint told tong tort trag tram tran trap trek trem trib trig trim trip trit trop turb
vend vent verb vert vind virt volt
nerd punt kunt kant berm derp gunk tird turd dork dunk funk bonk tonk zonk gonk nerk fark
kurd turk dolt fink bard tarp dink gong fang bing munk bong kong gord nord kord serb barm gulp burp bung
"""
_ENGLISH = set(_ENGLISH_TEXT.split())


@dataclass(frozen=True)
class Kind:
    name: str  # plural, e.g. "blics"
    habitat: str
    diet: str
    part: str


@dataclass(frozen=True)
class Entity:
    name: str  # plural, e.g. "zorbs"
    kind: str  # a Kind's name
    color: str
    size: str
    legs: str


def _names(rng: np.random.Generator, n: int, heads: list[str], vowels: str, tails: list[str]) -> list[str]:
    blocked = _RESERVED | _ENGLISH
    stems = sorted(h + v + t for h in heads for v in vowels for t in tails)
    pool = [w + "s" for w in stems if w not in blocked and w + "s" not in blocked]
    idx = rng.choice(len(pool), size=n, replace=False)
    return [pool[int(i)] for i in idx]


def _balanced(rng: np.random.Generator, values: tuple[str, ...], n: int) -> list[str]:
    return [values[int(i)] for i in rng.permutation(np.resize(np.arange(len(values)), n))]


class KnowledgeBase:
    def __init__(self, seed: int = KB_SEED, n_kinds: int = N_KINDS, n_entities: int = N_ENTITIES):
        rng = np.random.default_rng(seed)
        kind_names = _names(
            rng,
            n_kinds,
            ["bl", "br", "dr", "fl", "gl", "gr", "kl", "kr", "pl", "pr", "sl", "sn", "sp", "tr", "vl", "zr"],
            "aeiou",
            list("bdgkmnpt"),
        )
        habitats, diets = _balanced(rng, HABITATS, n_kinds), _balanced(rng, DIETS, n_kinds)
        parts = _balanced(rng, PARTS, n_kinds)
        self.kinds = {
            k: Kind(k, h, d, p) for k, h, d, p in zip(kind_names, habitats, diets, parts, strict=True)
        }
        ent_names = _names(
            rng,
            n_entities,
            list("bdfgkmnpstvz"),
            "aeiou",
            [
                "lb",
                "ld",
                "lk",
                "lm",
                "lp",
                "lt",
                "rb",
                "rd",
                "rg",
                "rk",
                "rm",
                "rp",
                "rt",
                "nd",
                "ng",
                "nk",
                "nt",
            ],
        )
        cols = zip(
            ent_names,
            _balanced(rng, tuple(kind_names), n_entities),
            _balanced(rng, COLORS, n_entities),
            _balanced(rng, SIZES, n_entities),
            _balanced(rng, LEGS, n_entities),
            strict=True,
        )
        self.entities = {e[0]: Entity(*e) for e in cols}

    @cached_property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(self.entities)

    @cached_property
    def kind_names(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def values(self, relation: str) -> tuple[str, ...]:
        """Every value a relation can take (for choices and distractors)."""
        if relation == "kind":
            return self.kind_names
        table = {"color": COLORS, "size": SIZES, "legs": LEGS}
        table |= {"habitat": HABITATS, "diet": DIETS, "part": PARTS}
        return table[relation]

    def lookup(self, subject: str, relation: str) -> str:
        """The value of `relation` for an entity or kind (plural name); entities inherit their
        kind's habitat, diet and part."""
        if subject in self.kinds:
            return getattr(self.kinds[subject], relation)
        ent = self.entities[subject]
        if relation in KIND_RELATIONS:
            return getattr(self.kinds[ent.kind], relation)
        return getattr(ent, relation)

    def states_inherited(self, entity: str) -> bool:
        """Whether the corpus states this entity's inherited facts directly (half of them do)."""
        return stable_hash("kb-derived", entity) % 2 == 0

    def facts(self) -> Iterator[tuple[str, str, str]]:
        """(subject, relation, value) for every fact the corpus states, in a fixed order."""
        for k in self.kinds:
            for rel in KIND_RELATIONS:
                yield k, rel, self.lookup(k, rel)
        for e in self.entities:
            for rel in ENTITY_RELATIONS:
                yield e, rel, self.lookup(e, rel)
            if self.states_inherited(e):
                for rel in KIND_RELATIONS:
                    yield e, rel, self.lookup(e, rel)


def sentence(subject: str, relation: str, value: str) -> str:
    return SENTENCES[relation].format(s=subject, v=value)


KB = KnowledgeBase()


def kb_sentences(kb: KnowledgeBase = KB) -> Iterator[str]:
    """Every fact of the knowledge base as a short sentence ("zorbs are red."), in a fixed order."""
    for subject, relation, value in kb.facts():
        yield sentence(subject, relation, value)
