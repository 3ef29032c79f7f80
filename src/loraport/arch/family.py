"""Read the per-family YAML files and turn a transformers config into concrete module shapes.

    arch = arch_for(AutoConfig.from_pretrained(path))
    arch.num_layers, arch.modules()                     # physical LoRA-able modules with shapes
    arch.parse("model.layers.3.self_attn.q_proj")       # -> ModuleInfo(layer=3, role parts, ...)

A family file lists each per-layer projection with its role (q, k, v, o, gate, up, down), the
dimension names of its input and output (dims are small expressions over config fields) and which
space each side lives in. Fused projections (Phi-3's qkv_proj) list their logical parts by rows.
Files are validated by FamilyFile (pydantic, unknown fields rejected, roles from ROLES), so a typo
names the file and the field when the families load.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loraport.errors import AdapterError, ArchError, closest

Role = Literal["q", "k", "v", "o", "gate", "up", "down"]
ROLES: tuple[str, ...] = get_args(Role)

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


def _eval_dim(expr: str, env: dict[str, Any]) -> Any:
    """Evaluate a dimension expression: names, integers, + - * //, `or` (first non-empty value)."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return env(node.id) if callable(env) else env.get(node.id)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            for v in node.values:
                val = ev(v)
                if val:
                    return val
            return None
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = ev(node.left), ev(node.right)
            if a is None or b is None:
                return None
            return _BINOPS[type(node.op)](a, b)
        raise ArchError(f"unsupported dimension expression {expr!r}")

    return ev(ast.parse(str(expr), mode="eval"))


@dataclass(frozen=True)
class Part:
    role: str
    start: int  # row range of the fused output
    stop: int
    out_space: str


@dataclass(frozen=True)
class ModuleInfo:
    name: str  # full module path, e.g. model.layers.3.self_attn.q_proj
    local: str  # per-layer name, e.g. self_attn.q_proj
    layer: int
    shape: tuple[int, int]  # (out, in) of ΔW
    in_space: str
    parts: tuple[Part, ...]  # one part for plain projections, several for fused ones

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(p.role for p in self.parts)


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    layer_prefix: str
    num_layers: str
    dims: dict[str, str]
    modules: tuple[dict[str, Any], ...]
    chat_template: str | None = None  # the family's documented turn format, for checkpoints without one


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PartSpec(_Strict):
    """One logical part (rows) of a fused projection."""

    role: Role
    size: str  # a dimension name or expression
    out_space: str


class ModuleSpec(_Strict):
    """One per-layer projection: a plain one has `role` and `out_space`, a fused one `parts`."""

    name: str  # per-layer module path, e.g. self_attn.q_proj
    in_: str = Field(alias="in")
    out: str
    in_space: str
    role: Role | None = None
    out_space: str | None = None
    parts: list[PartSpec] | None = None

    @model_validator(mode="after")
    def _plain_or_fused(self) -> ModuleSpec:
        plain = self.role is not None and self.out_space is not None
        if self.parts is None and not plain:
            raise ValueError("a plain projection needs role and out_space (a fused one: parts)")
        if self.parts is not None and (self.role is not None or self.out_space is not None):
            raise ValueError("a fused projection lists role and out_space per part, not on the module")
        if self.parts is not None and not self.parts:
            raise ValueError("parts: list at least one part")
        return self


class FamilyFile(_Strict):
    """The schema of an architecture family file (arch/families/*.yaml)."""

    family: str
    model_types: list[str] = Field(min_length=1)
    layer_prefix: str  # with a {layer} placeholder, e.g. "model.layers.{layer}."
    num_layers: str  # a config field or expression
    dims: dict[str, str]  # name -> expression over config fields and earlier dims
    modules: list[ModuleSpec] = Field(min_length=1)
    chat_template: str | None = None

    @field_validator("layer_prefix")
    @classmethod
    def _has_layer(cls, v: str) -> str:
        if "{layer}" not in v:
            raise ValueError("must contain the {layer} placeholder")
        return v

    def to_family(self) -> Family:
        modules = tuple(m.model_dump(by_alias=True, exclude_none=True) for m in self.modules)
        return Family(
            self.family,
            tuple(self.model_types),
            self.layer_prefix,
            self.num_layers,
            dict(self.dims),
            modules,
            self.chat_template,
        )


def load_family(text: str, where: str) -> Family:
    """Validate a family file's YAML text against FamilyFile; ArchError names `where` and the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ArchError(f"family file {where}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ArchError(f"family file {where}: expected a mapping of fields")
    try:
        return FamilyFile.model_validate(data).to_family()
    except ValidationError as e:
        errors = e.errors()
        # a misspelt field is also a missing one: name the misspelling
        err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        loc = [str(x) for x in err["loc"]]
        field = ".".join(loc) or "file"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc:
            model = {1: FamilyFile, 3: ModuleSpec, 5: PartSpec}.get(len(loc), FamilyFile)
            valid = [f.alias or k for k, f in model.model_fields.items()]
            field = ".".join(loc[:-1]) or "file"
            msg = f"unknown field {loc[-1]!r}{closest(loc[-1], valid)}"
        raise ArchError(f"family file {where}: {field}: {msg}") from None


@cache
def families() -> dict[str, Family]:
    out: dict[str, Family] = {}
    for f in sorted(resources.files("loraport.arch").joinpath("families").iterdir(), key=lambda p: p.name):
        if not f.name.endswith(".yaml"):
            continue
        fam = load_family(f.read_text(), f.name)
        out[fam.name] = fam
    return out


def family_for_model_type(model_type: str) -> Family:
    for fam in families().values():
        if model_type in fam.model_types:
            return fam
    known = [mt for f in families().values() for mt in f.model_types]
    raise ArchError(
        f"model_type {model_type!r} has no family file{closest(model_type, known)}; known: {', '.join(sorted(known))}"
    )


class Arch:
    """A family file resolved against one model config."""

    def __init__(self, family: Family, config: Any) -> None:
        self.family = family
        self.config = config
        dims: dict[str, Any] = {}

        def lookup(name: str) -> Any:
            return dims[name] if name in dims else getattr(config, name, None)

        for key, expr in family.dims.items():
            dims[key] = _eval_dim(expr, lookup)
        self.dims = dims
        n = _eval_dim(family.num_layers, lookup)
        if not isinstance(n, int) or n <= 0:
            raise ArchError(f"config field {family.num_layers} gives {n!r} layers")
        self.num_layers = n
        self._by_local = {m["name"]: m for m in family.modules}
        prefix = re.escape(family.layer_prefix).replace(r"\{layer\}", r"(?P<layer>\d+)")
        self._pattern = re.compile(rf"^{prefix}(?P<local>.+)$")

    @property
    def model_type(self) -> str:
        return self.config.model_type

    def _dim(self, key: Any) -> int:
        v = self.dims.get(key) if isinstance(key, str) else key
        if not isinstance(v, int) or v <= 0:
            raise ArchError(f"{self.family.name}: dimension {key!r} is {v!r} for this config")
        return v

    def module(self, layer: int, local: str) -> ModuleInfo:
        spec = self._by_local[local]
        shape = (self._dim(spec["out"]), self._dim(spec["in"]))
        if "parts" in spec:
            parts, start = [], 0
            for p in spec["parts"]:
                size = self._dim(p["size"])
                parts.append(Part(p["role"], start, start + size, p["out_space"]))
                start += size
            if start != shape[0]:
                raise ArchError(f"{self.family.name}: parts of {local} cover {start} rows, not {shape[0]}")
        else:
            parts = [Part(spec["role"], 0, shape[0], spec["out_space"])]
        name = self.family.layer_prefix.format(layer=layer) + local
        return ModuleInfo(name, local, layer, shape, spec["in_space"], tuple(parts))

    def modules(self) -> list[ModuleInfo]:
        return [self.module(i, m["name"]) for i in range(self.num_layers) for m in self.family.modules]

    def parse(self, name: str) -> ModuleInfo | None:
        m = self._pattern.match(name)
        if m is None or m["local"] not in self._by_local or int(m["layer"]) >= self.num_layers:
            return None
        return self.module(int(m["layer"]), m["local"])

    def check_adapter(self, adapter: Any, base_label: str) -> dict[str, ModuleInfo]:
        """Every adapter module must be a known projection of this base with the right ΔW shape."""
        out = {}
        for mod in adapter.modules:
            info = self.parse(mod)
            if info is None:
                raise AdapterError(
                    f"{adapter.path}: module {mod} is not a LoRA-able projection of base {base_label} "
                    f"({self.family.name}, {self.num_layers} layers)"
                )
            if tuple(adapter.shapes[mod]) != info.shape:
                raise AdapterError(
                    f"{adapter.path}: module {mod} has ΔW shape {list(adapter.shapes[mod])} but base "
                    f"{base_label} expects {list(info.shape)}"
                )
            out[mod] = info
        return out


def arch_for(config: Any) -> Arch:
    """The Arch for a transformers config (multimodal configs use their text_config)."""
    mt = getattr(config, "model_type", None)
    if mt is None:
        raise ArchError("config has no model_type")
    try:
        fam = family_for_model_type(mt)
    except ArchError:
        text = getattr(config, "text_config", None)
        if text is None:
            raise
        return arch_for(text)
    return Arch(fam, config)
