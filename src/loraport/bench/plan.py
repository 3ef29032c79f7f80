"""From a study spec to the cells that compute it: the planner core, shared by every study kind.

The core knows cells, keys and dependencies. Cells are train (a LoRA for a task on a base), teach
(the teacher's answers to unlabeled prompts), eval (a base, optionally with an adapter, on a task's
eval items), and the kinds a study kind or port method adds (the port study: port, distill,
control). Each has a content key over its inputs and the keys it depends on; a cell planned twice
is one cell. Conditions (what the report compares) point at eval cells.

A study kind (bench.kinds.STUDY_KINDS) adds its cells and conditions through a Planner (the port
study: bench/port_study.py); a port method plans its own cells through a PortRequest
(port.methods.PortMethod.plan).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loraport.bench.kinds import STUDY_KINDS
from loraport.bench.spec import Study, variant_name
from loraport.bench.store import content_key
from loraport.tasks import get_task


@dataclass(frozen=True)
class Cell:
    kind: str  # "train" | "teach" | "eval", or one a study kind or port method adds ("port", ...)
    key: str
    deps: tuple[str, ...]
    params: dict[str, Any] = field(hash=False, compare=False)
    label: str = ""


@dataclass
class Plan:
    cells: dict[str, Cell]
    conditions: dict[str, dict[str, Any]]  # record name -> condition fields + "eval" key
    skipped: list[str]
    fingerprints: dict[str, str] = field(default_factory=dict)  # base spec -> weights sha256

    def by_kind(self, kind: str) -> list[Cell]:
        return [c for c in self.cells.values() if c.kind == kind]


@dataclass
class PortRequest:
    """One port of a held-out task's X adapter as a method's `plan` hook sees it: what to port, and
    the planner's callbacks to add cells (see port.methods.PortMethod.plan)."""

    method: str
    options: dict[str, Any]  # as the study writes them (with no defaults filled in)
    task: str
    x_key: str  # the train cell of the X adapter to port
    pairs: list  # (anchor task, source train key, target train key) per anchor
    seed: int
    n: int
    fp: dict[str, str]  # side ("source", "target") -> fingerprint (with the device suffix)
    source: str
    target: str
    add: Callable[[str, str, tuple, dict[str, Any], str], str]  # (kind, key, deps, params, label)
    teach: Callable[[dict[str, Any]], str]  # the teacher-answers cell for these prompt options
    port: Callable[[str, dict[str, Any]], str]  # another method's port of the same input

    @staticmethod
    def key(*parts: Any) -> str:
        """A cell's content key over its inputs (bench.store.content_key)."""
        return content_key(*parts)

    @property
    def anchor_deps(self) -> tuple[str, ...]:
        return tuple(k for _, kx, ky in self.pairs for k in (kx, ky))

    @property
    def common(self) -> dict[str, Any]:
        """The params every port cell carries."""
        return {
            "method": self.method,
            "options": self.options,
            "seed": self.seed,
            "x": self.x_key,
            "task": self.task,
            "source": self.source,
            "target": self.target,
        }

    @property
    def label(self) -> str:
        return f"{self.task} {variant_name(self.method, self.options)} N={self.n} s{self.seed}"


class Planner:
    """The cells of one study on one device, as a study kind adds them. Keys cover every input;
    cells computed on another device than the CPU get keys of their own (float results differ
    between devices), while CPU keys carry no device, so they are the same as before devices
    existed. Every cell's params carry the device and the study's chat-template mode."""

    def __init__(self, study: Study, fingerprints: dict[str, str], device: str = "cpu") -> None:
        self.study = study
        self.device = device
        self.fingerprints = dict(fingerprints)
        self.cells: dict[str, Cell] = {}
        self.conditions: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []
        self.recipe = study.recipe.model_dump(mode="json")
        self.ev = study.eval.model_dump(mode="json")
        on = "" if device == "cpu" else "@" + device.split(":")[0]
        self.fp = {"source": fingerprints[study.source] + on, "target": fingerprints[study.target] + on}
        self.base = {"source": study.source, "target": study.target}

    def add(self, kind: str, key: str, deps: tuple, params: dict[str, Any], label: str) -> str:
        """Add a cell (once per key; empty deps are dropped) and return its key."""
        params = {**params, "device": self.device, "chat_template": self.study.chat_template}
        self.cells.setdefault(key, Cell(kind, key, tuple(d for d in deps if d), params, label))
        return key

    def train(self, side: str, task: str, recipe: dict[str, Any] | None = None, label: str = "") -> str:
        """The LoRA of `task` on the source or target base, with the study's recipe (or `recipe`,
        a Recipe's JSON dump, which a kind varies: a regularizer, a seed)."""
        recipe = self.recipe if recipe is None else recipe
        if side == "source" and self.study.source_adapters == "shipped":
            from loraport.zoo.shipped_adapters import find_shipped

            entry = find_shipped(self.fingerprints[self.study.source], task, recipe)
            if entry is not None:  # keyed by its bytes: a cache never mixes it with a local training
                key = content_key("train", "shipped", entry["files"]["adapter_model.safetensors"]["sha256"])
                params = {"base": self.base[side], "task": task, "recipe": recipe, "shipped": entry["name"]}
                return self.add("train", key, (), params, f"shipped {task} adapter for {self.base[side]}")
        key = content_key("train", self.fp[side], task, recipe)
        params = {"base": self.base[side], "task": task, "recipe": recipe}
        return self.add("train", key, (), params, label or f"train {task} on {self.base[side]}")

    def evaluate(self, side: str, task: str, adapter: str | None) -> str:
        """A base, with the adapter of cell `adapter` or none, on the task's eval items."""
        scorers = list(get_task(task).scorers)
        key = content_key("eval", self.fp[side], adapter, task, self.ev, scorers)
        label = f"eval {task} on {self.base[side]}" + (f" + {adapter[:8]}" if adapter else "")
        params = {"base": self.base[side], "task": task, "adapter": adapter, **self.ev}
        return self.add("eval", key, (adapter,), params, label)

    def teach(self, x_key: str, task: str, options: dict[str, Any]) -> str:
        """The source base + adapter `x_key`'s answers to the task's unlabeled prompts. With an
        `examples` option, only that many are the task's and the rest are synthesized by the
        `synthesizer` side's base (port.synth): the key then also covers that base."""
        prompts = {k: options[k] for k in ("prompts", "prompt_seed", "max_new_tokens")}
        parts: tuple = ()
        params = {"source": self.study.source, "x": x_key, "task": task}
        if options.get("examples") is not None:
            side = options.get("synthesizer", "target")
            mode = options.get("synthesis", "listing")
            prompts.update(examples=options["examples"], synthesizer=side, synthesis=mode)
            parts, params["synth_base"] = (self.fp[side],), self.base[side]
        key = content_key("teach", self.fp["source"], x_key, task, prompts, self.ev, *parts)
        params.update({**prompts, "eval": self.ev})
        return self.add("teach", key, (x_key,), params, f"teacher answers {task} from {x_key[:8]}")

    def plan(self) -> Plan:
        return Plan(self.cells, self.conditions, sorted(set(self.skipped)), dict(self.fingerprints))


def make_plan(study: Study, fingerprints: dict[str, str], device: str = "cpu") -> Plan:
    """The plan of `study` (its kind plans it; today every study is a port study).

    `fingerprints` maps the study's source and target specs to their weight fingerprints (with
    `+chat:<digest>` appended where the study's chat-template mode gives a base a chat format).
    `device` is where the cells compute; keys depend on it except on the CPU (see Planner).

        plan = make_plan(load_study("studies/quick.yaml"), {"tiny-qwen2-x": "fp-x", "tiny-llama-y": "fp-y"})
        plan.by_kind("port")
    """
    planner = Planner(study, fingerprints, device)
    STUDY_KINDS.get(study.kind).plan(planner, study)
    return planner.plan()
