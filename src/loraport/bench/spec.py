"""The study spec: one YAML file says everything a port study runs.

    study = load_study("studies/demo.yaml")     # StudyError with file, line and field on bad input

Keys (unknown keys are rejected with the closest valid one):

    name: demo
    kind: port                       # optional: the study kind (today: port)
    source: tiny-qwen2-x             # any base spec loraport can load (zoo name, folder, .gguf, hub id)
    target: tiny-llama-y
    anchors: [math_add, ...]         # anchor tasks (or "all": every registered anchor task)
    heldout: [math_mul_add, ...]     # held-out tasks (or "all")
    methods:                         # method -> options; a list value is a sweep
      mean: {}
      topk_global_ridge: {k: [2, 4, 8]}
    n_anchors: [4, 8, 16]            # anchor counts N (a sweep); each seed draws its own N anchors
    seeds: [0, 1, 2]
    pools: {all: all, math: [math_add, ...]}   # anchor pools; "all", or a domain name, or a task list
    recipe: {rank: 16, ...}          # loraport.train.Recipe fields
    eval: {n: 300, seed: 0}
    scorers: {sci_which: loglik_choice}   # optional: the scorer the metrics use per task
    usable_threshold: 0.03           # oracle − base below this: the row is excluded from aggregates
    controls: {shuffled: true, random: global_ridge}   # see Controls
    chat_template: auto              # auto: each base's own chat template (raw without one); family; none

A recipe_transfer study (bench/recipe_study.py) trains each regularizer on both bases instead of
porting; it needs no anchors or methods (given, each recipe's X adapter is also ported), and names:

    regularizers: {l2_delta: 0.1, entropy: null}   # name -> strength λ (null: the default); "none" is implied
    schemes: [int8_sym_tensor, awq_lite, ...]      # quantizers of the target base (loraport.quant)

A tiers study (bench/tiers_study.py) compares capacity tiers of one family (the target is one of
them) on tasks with a procedure block:

    tiers: [tiny-llama-s, tiny-llama-y, tiny-llama-l]   # smallest first

A snapshots study (bench/snapshot_study.py) ports the held-out X adapters' per-epoch checkpoints:

    snapshots: [1, 3, 6]           # epochs of the X adapter to port (1..recipe.epochs)
    anchor_snapshots: [1, 6]       # optional: epochs of the anchor adapters (default: the last)
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from loraport.errors import LoraportError, closest
from loraport.io import read_yaml_mapping
from loraport.train import Recipe


class StudyError(LoraportError):
    """A study spec that cannot run."""


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    n: int = Field(300, ge=1)
    seed: int = 0


class Controls(BaseModel):
    """Controls planned next to the methods (the mean of anchors is a method: list `mean`).

    shuffled: every method variant also ports another held-out task's X adapter (the next held-out
      task, cyclically, from another domain, so the control cannot inherit the task's answer format
      from a sibling; the next one when all share a domain; see bench.port_study.shuffled_source),
      at the largest N of each pool; a method that does no better than its shuffled input does not
      use the input.
    random: a variant name (e.g. global_ridge) whose every port gets a random-direction twin with
      the same per-module Frobenius norms.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    shuffled: bool = False
    random: str | None = None


class JudgeSpec(BaseModel):
    """A model judge on a subset of every eval cell of a tiers study (evaluate.judge): the first
    `n` items of each cell, its default prompt, greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    n: int = Field(25, ge=1)
    max_new_tokens: int = Field(16, ge=1)

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from loraport.models import resolve_model

        try:
            resolve_model(v)  # resolves the name only; nothing is loaded
        except LoraportError as e:
            raise ValueError(f"unknown judge model: {e}") from None
        return v


class Study(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(
        "port", description="the study kind that plans and reports it (bench.kinds.STUDY_KINDS)"
    )
    source: str
    target: str
    anchors: list[str] | str = Field(default_factory=list)
    heldout: list[str] | str
    methods: dict[str, dict[str, Any]] = Field(default_factory=dict)
    n_anchors: list[int] = Field(default_factory=lambda: [8])
    seeds: list[int] = Field(default_factory=lambda: [0])
    pools: dict[str, list[str] | str] = Field(default_factory=lambda: {"all": "all"})
    recipe: Recipe = Field(default_factory=Recipe)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    scorers: dict[str, str] = Field(
        default_factory=dict, description="task -> scorer the metrics use (default: the task's primary)"
    )
    usable_threshold: float = Field(0.03, ge=0, le=1)
    controls: Controls = Field(default_factory=Controls)
    chat_template: Literal["auto", "family", "none"] = Field(
        "auto",
        description="auto: each base's own chat template (raw where it has none); family: also a family template; none: raw",
    )
    regularizers: dict[str, float | None] = Field(
        default_factory=dict,
        description="recipe_transfer: regularizer -> strength λ (None: its default); 'none' is implied",
    )
    schemes: list[str] = Field(
        default_factory=list, description="recipe_transfer: quantization schemes of the target base"
    )
    tiers: list[str] = Field(
        default_factory=list,
        description="tiers: target bases of one family at several capacities, smallest first",
    )
    judge: JudgeSpec | None = Field(
        None, description="tiers: a model judge on the first n items of every eval cell"
    )
    snapshots: list[int] = Field(
        default_factory=list, description="snapshots: epochs of the X adapters to port (1..recipe.epochs)"
    )
    anchor_snapshots: list[int] = Field(
        default_factory=list, description="snapshots: epochs of the anchor adapters (default: the last)"
    )

    @model_serializer(mode="wrap")
    def _drop_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # fields of one study kind are left out of other kinds' dumps (run.json, to_yaml) while empty
        data = handler(self)
        for key in _KIND_FIELDS:
            if key in data and not data[key]:
                del data[key]
        return data

    @field_validator("regularizers")
    @classmethod
    def _known_regularizers(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        from loraport.train.regularizers import RegularizerError, get_regularizer

        for name, strength in v.items():
            if name == "none":
                raise ValueError("'none' is always the reference; list only the regularizers")
            try:
                reg = get_regularizer(name)
                if strength is not None:
                    reg.check_strength(name, strength)
            except RegularizerError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("schemes")
    @classmethod
    def _known_schemes(cls, v: list[str]) -> list[str]:
        from loraport.quant import QuantError, get_quantizer

        for name in v:
            try:
                get_quantizer(name)
            except QuantError as e:
                raise ValueError(str(e)) from None
        if len(set(v)) < len(v):
            raise ValueError(f"{next(x for x in v if v.count(x) > 1)!r} is listed twice")
        return v

    @model_validator(mode="after")
    def _snapshot_epochs(self) -> Study:
        for key in ("snapshots", "anchor_snapshots"):
            epochs = getattr(self, key)
            for e in epochs:
                if not 1 <= e <= self.recipe.epochs:
                    raise ValueError(
                        f"{key}: snapshot epoch {e} does not exist (the recipe trains {self.recipe.epochs} "
                        f"epochs, so checkpoints are epochs 1..{self.recipe.epochs})"
                    )
            if len(set(epochs)) < len(epochs):
                raise ValueError(
                    f"{key}: epoch {next(e for e in epochs if epochs.count(e) > 1)} is listed twice"
                )
        if self.kind == "snapshots":
            if not self.snapshots:
                raise ValueError("snapshots: a snapshots study lists at least one epoch to port")
            if not self.methods or not self.anchors:
                raise ValueError(
                    "methods: a snapshots study ports with at least one method and needs anchors"
                )
        return self

    @field_validator("n_anchors", "seeds")
    @classmethod
    def _nonempty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one value")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> Study:
        from loraport.bench.kinds import STUDY_KINDS
        from loraport.port import METHODS
        from loraport.tasks import get_task, list_tasks

        if self.kind not in STUDY_KINDS:
            raise ValueError(f"unknown study kind {self.kind!r}{closest(self.kind, STUDY_KINDS.names())}")
        for key in _KIND_FIELDS:
            if getattr(self, key) and self.kind not in _KIND_FIELDS[key]:
                raise ValueError(f"{key}: only a {' or '.join(_KIND_FIELDS[key])} study uses it")
        if self.kind == "recipe_transfer":
            if not self.regularizers:
                raise ValueError("regularizers: a recipe_transfer study names at least one regularizer")
            if self.recipe.regularizer is not None:
                raise ValueError(
                    "recipe.regularizer: a recipe_transfer study names its regularizers under "
                    "`regularizers` (its recipe is the unregularized reference)"
                )
            if self.methods and not self.anchors:
                raise ValueError("methods: porting each recipe's adapter needs anchors; list them")

        self.anchors = list_tasks(role="anchor") if self.anchors == "all" else list(self.anchors)
        self.heldout = list_tasks(role="heldout") if self.heldout == "all" else list(self.heldout)
        for t in (*self.anchors, *self.heldout):
            get_task(t)
        for t, s in self.scorers.items():
            if t not in self.heldout:
                raise ValueError(f"scorers: {t!r} is not a held-out task")
            if s not in get_task(t).scorers:
                raise ValueError(
                    f"scorers: task {t!r} is not scored by {s!r} (it has {', '.join(get_task(t).scorers)})"
                )
        both = sorted(set(self.anchors) & set(self.heldout))
        if both:
            raise ValueError(f"held-out task {both[0]!r} is also an anchor")
        if self.kind == "tiers":
            _check_tiers(self)
        pools = {}
        for name, pool in self.pools.items():
            if pool == "all":
                pools[name] = list(self.anchors)
            elif isinstance(pool, str):
                pools[name] = [t for t in self.anchors if get_task(t).domain == pool]
                if not pools[name]:
                    raise ValueError(f"pool {name!r}: no anchor task has domain {pool!r}")
            else:
                unknown = [t for t in pool if t not in self.anchors]
                if unknown:
                    raise ValueError(f"pool {name!r}: {unknown[0]!r} is not one of the anchors")
                pools[name] = list(pool)
        self.pools = pools
        for n in self.n_anchors if self.anchors or self.kind == "port" else ():
            if n < 1 or n > len(self.anchors):
                raise ValueError(f"n_anchors {n} is outside 1..{len(self.anchors)} (the number of anchors)")
        for method in self.methods:
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}{closest(method, METHODS.names())}")
        from loraport.port import get_method

        # each variant's options are checked by the method's own pydantic Options model (unknown
        # options included: the one check, with the closest valid name)
        variants = []
        for method, options in self.method_variants():
            try:
                get_method(method, **options)
            except LoraportError as e:
                raise ValueError(str(e)) from None
            variants.append(variant_name(method, options))
        if self.controls.random is not None and self.controls.random not in variants:
            raise ValueError(
                f"controls.random: {self.controls.random!r} is not a method variant of this study"
                + (closest(self.controls.random, variants) or f" (variants: {', '.join(variants)})")
            )
        return self

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The study as YAML, resolved ("all" anchors, held-out tasks and pools written out, every
        default explicit): `load_study` of it gives an equal study with the same plan. Written to
        `path` too when given.

            text = load_study("studies/demo.yaml").to_yaml()
        """
        text = f"# study {self.name}, written by Study.to_yaml\n" + yaml.safe_dump(
            self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100
        )
        if path is not None:
            Path(path).write_text(text)
        return text

    def method_variants(self) -> list[tuple[str, dict[str, Any]]]:
        """Each method with one value per option (list-valued options are expanded)."""
        out = []
        for method, options in self.methods.items():
            keys = list(options)
            grids = [options[k] if isinstance(options[k], list) else [options[k]] for k in keys]
            for combo in itertools.product(*grids):
                out.append((method, dict(zip(keys, combo, strict=True))))
        return out


#: Spec fields that only some study kinds use (left out of dumps while empty): field -> kinds.
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "regularizers": ("recipe_transfer",),
    "schemes": ("recipe_transfer",),
    "snapshots": ("snapshots",),
    "anchor_snapshots": ("snapshots",),
    "tiers": ("tiers",),
    "judge": ("tiers",),
}


def _check_tiers(study: Study) -> None:
    """A tiers study (bench/tiers_study.py): two or more distinct tiers, the target one of them,
    every held-out task with a procedure block, and anchors when it ports."""
    from loraport.tasks import get_task

    if len(study.tiers) < 2:
        got = f"only {study.tiers[0]!r}" if study.tiers else "none"
        raise ValueError(f"tiers: a tiers study compares at least two capacity tiers (got {got})")
    if len(set(study.tiers)) < len(study.tiers):
        raise ValueError(
            f"tiers: {next(t for t in study.tiers if study.tiers.count(t) > 1)!r} is listed twice"
        )
    if study.target not in study.tiers:
        raise ValueError(f"target: {study.target!r} is not one of the tiers ({', '.join(study.tiers)})")
    for task in study.heldout:
        if not get_task(task).procedure:
            raise ValueError(
                f"heldout: task {task!r} carries no procedure block (a tiers study compares plain "
                "and procedure prompts; see tasks.procedure)"
            )
    if study.methods and not study.anchors:
        raise ValueError("methods: porting to each tier needs anchors; list them")


def variant_name(method: str, options: dict[str, Any]) -> str:
    """How a method with one value per option is named in records and reports: method[k=v]..."""
    return method + "".join(f"[{k}={v}]" for k, v in sorted(options.items()))


def load_study(path: str | Path) -> Study:
    """Read and validate a study YAML file (see the module docstring for its fields); a bad file
    raises StudyError with the file, line and field, and the closest valid name for a typo.

        study = load_study("studies/quick.yaml")
        study.method_variants()[:2]      # [('mean', {}), ('global_ridge', {})]
    """
    path = Path(path)
    raw, data = read_yaml_mapping(path, StudyError, "study")
    unknown = [k for k in raw if k not in Study.model_fields]
    if unknown:
        k = unknown[0]
        raise StudyError(
            f"{path}, line {_line(data, [k])}: unknown field {k!r}{closest(k, list(Study.model_fields))}"
        )
    try:
        return Study(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err["loc"]]
        field = ".".join(loc) or "study"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc:
            parent = {"recipe": Recipe, "eval": EvalSpec, "controls": Controls, "judge": JudgeSpec}.get(
                loc[0]
            )
            valid = list(parent.model_fields) if parent else []
            msg = f"unknown field {loc[-1]!r}{closest(loc[-1], valid)}"
        raise StudyError(f"{path}, line {_line(data, loc)}: {field}: {msg}") from None


def _line(node: Any, loc: list[str]) -> int:
    """The 1-based line of the deepest YAML node along `loc` (the top of the file if none)."""
    line = 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == key]
            if not match:
                break
            line = match[0][0].start_mark.line + 1
            node = match[0][1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line
