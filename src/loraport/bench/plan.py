"""From a study spec to the cells that compute it.

Cells are train (a LoRA for a task on a base), port (a method applied to a held-out X adapter with
anchors) and eval (a base, optionally with an adapter, on a task's eval items). Each has a content
key over its inputs and the keys it depends on; conditions (what the report compares) point at eval
cells. For one seed the same anchor subset serves every method and held-out task, so the method
comparison is paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loraport.bench.spec import Study
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


def variant_name(method: str, options: dict[str, Any]) -> str:
    return method + "".join(f"[{k}={v}]" for k, v in sorted(options.items()))


def make_plan(study: Study, fingerprints: dict[str, str]) -> Plan:
    """`fingerprints` maps the study's source and target specs to their weight fingerprints."""
    cells: dict[str, Cell] = {}
    conditions: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    recipe = study.recipe.model_dump(mode="json")
    ev = study.eval.model_dump(mode="json")
    fp = {"source": fingerprints[study.source], "target": fingerprints[study.target]}
    base = {"source": study.source, "target": study.target}

    def train(side: str, task: str) -> str:
        key = content_key("train", fp[side], task, recipe)
        cells.setdefault(
            key,
            Cell(
                "train",
                key,
                (),
                {"base": base[side], "task": task, "recipe": recipe},
                f"train {task} on {base[side]}",
            ),
        )
        return key

    def evaluate(side: str, task: str, adapter: str | None) -> str:
        scorers = list(get_task(task).scorers)
        key = content_key("eval", fp[side], adapter, task, ev, scorers)
        deps = (adapter,) if adapter else ()
        label = f"eval {task} on {base[side]}" + (f" + {adapter[:8]}" if adapter else "")
        cells.setdefault(
            key, Cell("eval", key, deps, {"base": base[side], "task": task, "adapter": adapter, **ev}, label)
        )
        return key

    for task in study.heldout:
        domain = get_task(task).domain
        common = {"task": task, "domain": domain}
        conditions[f"{task}__base_y"] = {
            **common,
            "condition": "base_y",
            "eval": evaluate("target", task, None),
        }
        conditions[f"{task}__oracle_y"] = {
            **common,
            "condition": "oracle_y",
            "eval": evaluate("target", task, train("target", task)),
        }
        x_key = train("source", task)
        conditions[f"{task}__teacher"] = {
            **common,
            "condition": "teacher",
            "eval": evaluate("source", task, x_key),
        }
        for pool_name, pool in study.pools.items():
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
                        key = content_key(
                            "port", method, options, seed, pairs, x_key, fp["target"], study.target
                        )
                        params = {
                            "method": method,
                            "options": options,
                            "seed": seed,
                            "pairs": pairs,
                            "x": x_key,
                            "source": study.source,
                            "target": study.target,
                            "task": task,
                        }
                        deps = (x_key, *(k for _, kx, ky in pairs for k in (kx, ky)))
                        cells.setdefault(
                            key,
                            Cell(
                                "port",
                                key,
                                deps,
                                params,
                                f"port {task} {variant_name(method, options)} N={n} s{seed}",
                            ),
                        )
                        name = f"{task}__{variant_name(method, options)}__{pool_name}__N{n}__s{seed}"
                        conditions[name] = {
                            **common,
                            "condition": "method",
                            "method": method,
                            "options": options,
                            "variant": variant_name(method, options),
                            "pool": pool_name,
                            "n_anchors": n,
                            "seed": seed,
                            "anchors": anchors,
                            "eval": evaluate("target", task, key),
                            "port": key,
                        }
    return Plan(cells, conditions, sorted(set(skipped)), dict(fingerprints))
