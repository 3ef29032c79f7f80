"""The study spec: one YAML file says everything a port study runs.

    study = load_study("studies/demo.yaml")     # StudyError with file, line and field on bad input

Keys (unknown keys are rejected with the closest valid one):

    name: demo
    kind: port                       # optional: the study kind (default port; bench.kinds.STUDY_KINDS)
    source: tiny-qwen2-x             # any base spec loraport can load (zoo name, folder, .gguf, hub id)
    target: tiny-llama-y
    anchors: [math_add, ...]         # anchor tasks (or "all": every registered anchor task)
    heldout: [math_mul_add, ...]     # held-out tasks (or "all")
    methods:                         # method -> options; a list value is a sweep
      distill: [{init: [zero, global_ridge]}, {init: global_ridge, weighting: excess}]   # a union of sweeps
      mean: {}
      topk_global_ridge: {k: [2, 4, 8]}
    n_anchors: [4, 8, 16]            # anchor counts N (a sweep); each seed draws its own N anchors
    seeds: [0, 1, 2]
    pools: {all: all, math: [math_add, ...]}   # anchor pools; "all", or a domain name, or a task list
    recipe: {rank: 16, ...}          # loraport.train.Recipe fields
    eval: {n: 300, seed: 0}
    scorers: {sci_which: loglik_choice}   # optional: the scorer the metrics use per task
    usable_threshold: 0.03           # oracle − base below this: the row is excluded from aggregates
    base_reference: measured         # or chance: on choice tasks base Y counts as at least chance
    controls: {shuffled: true, random: global_ridge}   # see Controls
    source_adapters: train           # or shipped: source LoRAs the package ships (zoo.shipped_adapters)
    chat_template: auto              # auto: each base's own chat template (raw without one); family; none

A study kind may declare fields of its own (bench.kinds.KindOptions, in the kind's module): they
sit beside these in the file, are checked by the kind's model, read as `study.<field>`, and are an
error in a study of another kind. Each kind's options model documents its fields, and
docs/studies.md shows a study of each kind.
"""

from __future__ import annotations

import itertools
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from loraport.bench.kinds import STUDY_KINDS, KindOptions, option_fields
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
    methods: dict[str, dict[str, Any] | list[dict[str, Any]]] = Field(default_factory=dict)
    n_anchors: list[int] = Field(default_factory=lambda: [8])
    seeds: list[int] = Field(default_factory=lambda: [0])
    pools: dict[str, list[str] | str] = Field(default_factory=lambda: {"all": "all"})
    recipe: Recipe = Field(default_factory=Recipe)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    scorers: dict[str, str] = Field(
        default_factory=dict, description="task -> scorer the metrics use (default: the task's primary)"
    )
    usable_threshold: float = Field(0.03, ge=0, le=1)
    base_reference: Literal["measured", "chance"] = Field(
        "measured",
        description="base Y in gap_recovered: measured, or on choice tasks at least chance (a model "
        "that names a random letter), so that a port which learned only the answer format recovers nothing",
    )
    controls: Controls = Field(default_factory=Controls)
    chat_template: Literal["auto", "family", "none"] = Field(
        "auto",
        description="auto: each base's own chat template (raw where it has none); family: also a family template; none: raw",
    )
    source_adapters: Literal["train", "shipped"] = Field(
        "train",
        description="train: every source LoRA is trained where the study runs; shipped: those the "
        "package ships (loraport.zoo.shipped_adapters) are copied, checked by sha256, so every machine "
        "ports the same files",
    )
    kind_options: SerializeAsAny[KindOptions] = Field(
        default_factory=KindOptions,
        description="the kind's own fields (its StudyKind.options model), written flat in the YAML",
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_kind_options(cls, data: Any) -> Any:
        # the kind's own fields sit beside the core's in the file; they are validated by the kind's
        # model (the kind_options validator). A field of another kind is an error unless empty.
        if not isinstance(data, dict) or "kind_options" in data:
            return data
        data = dict(data)
        kind = data.get("kind", "port")
        if not isinstance(kind, str) or kind not in STUDY_KINDS:
            return data  # the kind field's own error
        own = STUDY_KINDS.get(kind).options.model_fields
        clash = sorted(set(own) & set(cls.model_fields))
        if clash:  # a kind's field would never be read: the core's would take it
            raise ValueError(f"study kind {kind!r} declares {clash[0]!r}, a field every study has")
        users = option_fields()
        options = {}
        for key in [k for k in data if k not in cls.model_fields]:
            if key in own:
                options[key] = data.pop(key)
            elif key in users and data.pop(key) not in (None, [], {}):
                raise ValueError(f"{key}: only a {' or '.join(users[key])} study uses it")
        data["kind_options"] = options
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in STUDY_KINDS:
            raise ValueError(f"unknown study kind {v!r}{closest(v, STUDY_KINDS.names())}")
        return v

    @field_validator("kind_options", mode="before")
    @classmethod
    def _kind_options(cls, v: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None or isinstance(v, KindOptions):
            return v
        return STUDY_KINDS.get(kind).options.model_validate(v)

    def __getattr__(self, name: str) -> Any:
        # a kind's own field reads as the study's (study.tiers), as the YAML writes it
        options = self.__dict__.get("kind_options")
        if options is not None and name in type(options).model_fields:
            return getattr(options, name)
        return super().__getattr__(name)

    def bases(self) -> tuple[str, ...]:
        """The bases whose weight fingerprints the study's cell keys need: source, target and any
        its kind adds (a tiers study's tiers), each once."""
        return tuple(dict.fromkeys((self.source, self.target, *self.kind_options.bases())))

    @model_serializer(mode="wrap")
    def _flat_kind_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # the kind's own fields are written beside the core's, as the YAML has them, and left out
        # while empty (so run.json and to_yaml of a kind without them are as before they existed)
        data = handler(self)
        for key, value in data.pop("kind_options", {}).items():
            if value not in (None, [], {}):
                data[key] = value
        return data

    @field_validator("n_anchors", "seeds")
    @classmethod
    def _nonempty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one value")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> Study:
        from loraport.port import METHODS
        from loraport.tasks import get_task, list_tasks

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
        self.kind_options.check(self)  # the kind's own fields against the resolved study
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
        for method, sets in self.methods.items():
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}{closest(method, METHODS.names())}")
            if isinstance(sets, list) and not sets:
                raise ValueError(f"method {method!r}: an empty list of option maps (give {{}} for the defaults)")
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

    def option_sets(self, method: str) -> list[dict[str, Any]]:
        """A method's option maps: one, or the list the file gives (each a sweep of its own)."""
        sets = self.methods[method]
        return list(sets) if isinstance(sets, list) else [sets]

    def method_variants(self) -> list[tuple[str, dict[str, Any]]]:
        """Each method with one value per option: list-valued options are expanded, and a method
        given a list of option maps has the union of their expansions (each variant once)."""
        out: list[tuple[str, dict[str, Any]]] = []
        for method in self.methods:
            for options in self.option_sets(method):
                keys = list(options)
                grids = [options[k] if isinstance(options[k], list) else [options[k]] for k in keys]
                for combo in itertools.product(*grids):
                    variant = (method, dict(zip(keys, combo, strict=True)))
                    if variant not in out:
                        out.append(variant)
        return out


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
    core = [k for k in Study.model_fields if k != "kind_options"]
    valid = core + [k for k in option_fields() if k not in core]
    unknown = [k for k in raw if k not in valid]
    if unknown:
        k = unknown[0]
        raise StudyError(f"{path}, line {_line(data, [k])}: unknown field {k!r}{closest(k, valid)}")
    try:
        return Study(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err["loc"] if not _union_tag(str(x))]
        if loc[:1] == ["kind_options"]:  # the kind's own fields are top-level ones in the file
            loc = loc[1:]
        field = ".".join(loc) or "study"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc:
            options = STUDY_KINDS.get(raw.get("kind", "port")).options
            parent = _model_along(options if loc[0] in options.model_fields else Study, loc[:-1])
            msg = f"unknown field {loc[-1]!r}{closest(loc[-1], list(parent.model_fields) if parent else [])}"
        raise StudyError(f"{path}, line {_line(data, loc)}: {field}: {msg}") from None


def _union_tag(part: str) -> bool:
    """Whether a pydantic error location part names a union member ("JudgeSpec",
    "list[JudgeSpec]") rather than a field or key: the file has no such level."""
    if "[" in part:
        return True
    todo, names = [BaseModel], set()
    while todo:
        for sub in todo.pop().__subclasses__():
            names.add(sub.__name__)
            todo.append(sub)
    return part in names


def _model_along(model: type[BaseModel] | None, keys: list[str]) -> type[BaseModel] | None:
    """The pydantic model reached from `model` through fields `keys` (None where one is no model)."""
    for key in keys:
        field = model.model_fields.get(key) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation names (JudgeSpec | None -> JudgeSpec), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in typing.get_args(annotation) if (m := _model_in(a)) is not None), None)


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
