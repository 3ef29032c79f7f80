"""From a study spec to the cells that compute it.

Cells are train (a LoRA for a task on a base), port (a method applied to a held-out X adapter with
anchors) and eval (a base, optionally with an adapter, on a task's eval items). Each has a content
key over its inputs and the keys it depends on; conditions (what the report compares) point at eval
cells. For one seed the same anchor subset serves every method and held-out task, so the method
comparison is paired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loraport.bench.spec import Study, variant_name
from loraport.bench.store import content_key
from loraport.tasks import get_task


@dataclass(frozen=True)
class Cell:
    kind: str  # "train" | "port" | "eval"
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


def anchor_subset(pool: list[str], n: int, seed: int, pool_name: str) -> list[str]:
    rng = np.random.default_rng(content_key_int("anchors", pool_name, n, seed))
    picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return sorted(pool[int(i)] for i in picks)


def content_key_int(*parts: Any) -> int:
    return int(content_key(*parts)[:15], 16)


def shuffled_source(heldout: list[str], i: int) -> str:
    """The task whose X adapter the shuffled-source controls of heldout[i] port: the next held-out
    task (cyclically) from another domain, so the control cannot inherit the task's answer format
    from a sibling; the next task when every held-out task shares one domain."""
    order = [*heldout[i + 1 :], *heldout[:i]]
    domain = get_task(heldout[i]).domain
    return next((t for t in order if get_task(t).domain != domain), order[0] if order else heldout[i])


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


def make_plan(study: Study, fingerprints: dict[str, str], device: str = "cpu") -> Plan:
    """`fingerprints` maps the study's source and target specs to their weight fingerprints (with
    `+chat:<digest>` appended where the study's chat-template mode gives a base a chat format).
    Cells computed on another device than the CPU get keys of their own (float results differ
    between devices); CPU keys carry no device, so they are the same as before devices existed."""
    from loraport.port import METHODS

    cells: dict[str, Cell] = {}
    conditions: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    recipe = study.recipe.model_dump(mode="json")
    ev = study.eval.model_dump(mode="json")
    on = "" if device == "cpu" else "@" + device.split(":")[0]
    fp = {"source": fingerprints[study.source] + on, "target": fingerprints[study.target] + on}
    base = {"source": study.source, "target": study.target}

    def add(kind: str, key: str, deps: tuple, params: dict[str, Any], label: str) -> str:
        params = {**params, "device": device, "chat_template": study.chat_template}
        cells.setdefault(key, Cell(kind, key, tuple(d for d in deps if d), params, label))
        return key

    def train(side: str, task: str) -> str:
        key = content_key("train", fp[side], task, recipe)
        return add(
            "train",
            key,
            (),
            {"base": base[side], "task": task, "recipe": recipe},
            f"train {task} on {base[side]}",
        )

    def evaluate(side: str, task: str, adapter: str | None) -> str:
        scorers = list(get_task(task).scorers)
        key = content_key("eval", fp[side], adapter, task, ev, scorers)
        label = f"eval {task} on {base[side]}" + (f" + {adapter[:8]}" if adapter else "")
        return add(
            "eval", key, (adapter,), {"base": base[side], "task": task, "adapter": adapter, **ev}, label
        )

    def teach(x_key: str, task: str, options: dict[str, Any]) -> str:
        prompts = {k: options[k] for k in ("prompts", "prompt_seed", "max_new_tokens")}
        key = content_key("teach", fp["source"], x_key, task, prompts, ev)
        params = {"source": study.source, "x": x_key, "task": task, **prompts, "eval": ev}
        return add("teach", key, (x_key,), params, f"teacher answers {task} from {x_key[:8]}")

    def port(
        method: str, options: dict[str, Any], task: str, x_key: str, pairs: list, seed: int, n: int
    ) -> str:
        """The cell that ports `x_key` with one method variant (and the cells it needs): the method
        plans them (PortMethod.plan)."""
        req = PortRequest(
            method=method,
            options=options,
            task=task,
            x_key=x_key,
            pairs=pairs,
            seed=seed,
            n=n,
            fp=fp,
            source=study.source,
            target=study.target,
            add=add,
            teach=lambda opts: teach(x_key, task, opts),
            port=lambda m, o: port(m, o, task, x_key, pairs, seed, n),
        )
        return METHODS.get(method)(**options).plan(req)

    def random_control(ref: str, seed: int) -> str:
        key = content_key("random", ref, seed)
        return add("control", key, (ref,), {"ref": ref, "seed": seed}, f"random direction like {ref[:8]}")

    controls = study.controls
    for i, task in enumerate(study.heldout):
        domain = get_task(task).domain
        common = {"task": task, "domain": domain}
        conditions[f"{task}__base_y"] = {
            **common,
            "condition": "base_y",
            "eval": evaluate("target", task, None),
        }
        oracle = train("target", task)
        conditions[f"{task}__oracle_y"] = {
            **common,
            "condition": "oracle_y",
            "eval": evaluate("target", task, oracle),
            "train": oracle,
        }
        x_key = train("source", task)
        conditions[f"{task}__teacher"] = {
            **common,
            "condition": "teacher",
            "eval": evaluate("source", task, x_key),
            "train": x_key,
        }
        other = shuffled_source(study.heldout, i)
        for pool_name, pool in study.pools.items():
            n_top = max((n for n in study.n_anchors if n <= len(pool)), default=None)
            for n in study.n_anchors:
                if n > len(pool):
                    skipped.append(f"pool {pool_name!r} has {len(pool)} anchors, fewer than N={n}")
                    continue
                for seed in study.seeds:
                    anchors = anchor_subset(pool, n, seed, pool_name)
                    pairs = [(a, train("source", a), train("target", a)) for a in anchors]
                    for method, options in study.method_variants():
                        if options.get("k", 0) > n:
                            skipped.append(f"{variant_name(method, options)} at N={n}: K exceeds N")
                            continue
                        variant = variant_name(method, options)
                        key = port(method, options, task, x_key, pairs, seed, n)
                        cond = {
                            **common,
                            "condition": "method",
                            "method": method,
                            "options": options,
                            "variant": variant,
                            "pool": pool_name,
                            "n_anchors": n,
                            "seed": seed,
                            "anchors": anchors,
                        }
                        suffix = f"{pool_name}__N{n}__s{seed}"
                        conditions[f"{task}__{variant}__{suffix}"] = {
                            **cond,
                            "eval": evaluate("target", task, key),
                            "port": key,
                        }
                        if controls.random == variant:
                            rk = random_control(key, seed)
                            conditions[f"{task}__random__{variant}__{suffix}"] = {
                                **cond,
                                "control": "random",
                                "of": variant,
                                "variant": f"random:{variant}",
                                "eval": evaluate("target", task, rk),
                                "port": rk,
                            }
                        if controls.shuffled and n == n_top and other != task:
                            sk = port(method, options, task, train("source", other), pairs, seed, n)
                            conditions[f"{task}__shuffled__{variant}__{suffix}"] = {
                                **cond,
                                "control": "shuffled",
                                "of": variant,
                                "variant": f"shuffled:{variant}",
                                "shuffled_from": other,
                                "eval": evaluate("target", task, sk),
                                "port": sk,
                            }
    return Plan(cells, conditions, sorted(set(skipped)), dict(fingerprints))
