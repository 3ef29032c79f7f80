"""The port study: train X and Y adapters for anchor and held-out tasks, port each held-out X adapter
with every method variant, evaluate, and compare with the target base, its oracle and the teacher.

Cells it adds on top of the planner core's (train, teach, eval): port and distill (planned by each
method, PortMethod.plan, and computed by it, PortMethod.run_cell) and control (a random-direction
twin); it registers them in bench.cellkinds.CELL_KINDS, which the other kinds' ports use too.
For one seed the same anchor subset serves every method and held-out task, so the method
comparison is paired. Controls: a random twin
of one variant's ports, and the shuffled source: each variant also ports another held-out task's X
adapter (shuffled_source), at the largest N of each pool.

Its metrics are bench/metrics.py (gap recovered, paired bootstrap, controls, costs) and its report
section is report/port_report.py; both read stored records only. `loraport report` imports this
module (bench.kinds), so the planner, the spec and the tasks, which load torch, are imported inside
the planning functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loraport.bench.cellkinds import CELL_KINDS, CellKind
from loraport.bench.kinds import STUDY_KINDS, StudyKind
from loraport.bench.store import content_key

if TYPE_CHECKING:
    from loraport.bench.plan import Cell, Planner
    from loraport.bench.spec import Study
    from loraport.bench.store import Store


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
    from loraport.tasks import get_task

    order = [*heldout[i + 1 :], *heldout[:i]]
    domain = get_task(heldout[i]).domain
    return next((t for t in order if get_task(t).domain != domain), order[0] if order else heldout[i])


def port(
    p: Planner, method: str, options: dict[str, Any], task: str, x_key: str, pairs: list, seed: int, n: int
) -> str:
    """The cell that ports `x_key` with one method variant (and the cells it needs): the method
    plans them (PortMethod.plan)."""
    from loraport.bench.plan import PortRequest
    from loraport.port import METHODS

    req = PortRequest(
        method=method,
        options=options,
        task=task,
        x_key=x_key,
        pairs=pairs,
        seed=seed,
        n=n,
        fp=p.fp,
        source=p.study.source,
        target=p.study.target,
        add=p.add,
        teach=lambda opts: p.teach(x_key, task, opts),
        port=lambda m, o: port(p, m, o, task, x_key, pairs, seed, n),
    )
    return METHODS.get(method)(**options).plan(req)


def random_control(p: Planner, ref: str, seed: int) -> str:
    key = content_key("random", ref, seed)
    return p.add("control", key, (ref,), {"ref": ref, "seed": seed}, f"random direction like {ref[:8]}")


def target_baselines(p: Planner, task: str, common: dict[str, Any]) -> str:
    """The target base alone (condition base_y) and Y's own adapter, trained with labels (oracle_y),
    on `task`; returns the oracle's train key. Every kind that ports to the target plans them."""
    p.conditions[f"{task}__base_y"] = {
        **common,
        "condition": "base_y",
        "eval": p.evaluate("target", task, None),
    }
    oracle = p.train("target", task)
    p.conditions[f"{task}__oracle_y"] = {
        **common,
        "condition": "oracle_y",
        "eval": p.evaluate("target", task, oracle),
        "train": oracle,
    }
    return oracle


def has_budget_sweep(study: Study) -> bool:
    """Whether some method is given a list of `steps` budgets (a cost curve, bench.cost_curve)."""
    return any(
        isinstance(o.get("steps"), list) and len(o["steps"]) > 1 for m in study.methods for o in study.option_sets(m)
    )


def oracle_checkpoints(p: Planner, study: Study, task: str, oracle: str, common: dict[str, Any]) -> None:
    """The oracle's own learning curve, the reference a budget sweep is read against: its adapter
    after each earlier epoch (the trainer keeps one per epoch, so no cell trains anything) on the
    task's eval items, as conditions oracle_checkpoint with `epoch` of `epochs`."""
    from loraport.bench.metrics import ORACLE_CHECKPOINT
    from loraport.bench.snapshot_study import snapshot

    epochs = study.recipe.epochs
    for epoch in range(1, epochs):
        p.conditions[f"{task}__oracle_y__epoch{epoch}"] = {
            **common,
            "condition": ORACLE_CHECKPOINT,
            "epoch": epoch,
            "epochs": epochs,
            "eval": p.evaluate("target", task, snapshot(oracle, epoch, epochs)),
            "oracle_train": oracle,
        }


def anchor_pairs(p: Planner, anchors: list[str]) -> list[tuple[str, str, str]]:
    """(task, X adapter cell, Y adapter cell) of each anchor task, trained with the study's recipe."""
    return [(a, p.train("source", a), p.train("target", a)) for a in anchors]


def method_ports(
    p: Planner, study: Study, task: str, x_key: str, pairs: list, seed: int, n: int
) -> Iterator[tuple[str, dict[str, Any], str, str]]:
    """(method, options, variant, port cell) of each of the study's method variants porting `x_key`
    from `pairs` at N=n; a variant whose K exceeds N is listed as skipped instead."""
    from loraport.bench.spec import variant_name

    for method, options in study.method_variants():
        if options.get("k", 0) > n:
            p.skipped.append(f"{variant_name(method, options)} at N={n}: K exceeds N")
            continue
        yield (
            method,
            options,
            variant_name(method, options),
            port(p, method, options, task, x_key, pairs, seed, n),
        )


def plan_port_study(p: Planner, study: Study) -> None:
    """Per held-out task: base_y, oracle_y and teacher conditions, then per pool, N, seed and
    method variant a port (with its controls) evaluated on the target."""
    from loraport.tasks import get_task

    controls = study.controls
    sweep = has_budget_sweep(study)
    for i, task in enumerate(study.heldout):
        domain = get_task(task).domain
        common = {"task": task, "domain": domain}
        oracle = target_baselines(p, task, common)
        if sweep:
            oracle_checkpoints(p, study, task, oracle, common)
        x_key = p.train("source", task)
        p.conditions[f"{task}__teacher"] = {
            **common,
            "condition": "teacher",
            "eval": p.evaluate("source", task, x_key),
            "train": x_key,
        }
        other = shuffled_source(study.heldout, i)
        for pool_name, pool in study.pools.items():
            n_top = max((n for n in study.n_anchors if n <= len(pool)), default=None)
            for n in study.n_anchors:
                if n > len(pool):
                    p.skipped.append(f"pool {pool_name!r} has {len(pool)} anchors, fewer than N={n}")
                    continue
                for seed in study.seeds:
                    anchors = anchor_subset(pool, n, seed, pool_name)
                    pairs = anchor_pairs(p, anchors)
                    for method, options, variant, key in method_ports(p, study, task, x_key, pairs, seed, n):
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
                        p.conditions[f"{task}__{variant}__{suffix}"] = {
                            **cond,
                            "eval": p.evaluate("target", task, key),
                            "port": key,
                        }
                        if controls.random == variant:
                            rk = random_control(p, key, seed)
                            p.conditions[f"{task}__random__{variant}__{suffix}"] = {
                                **cond,
                                "control": "random",
                                "of": variant,
                                "variant": f"random:{variant}",
                                "eval": p.evaluate("target", task, rk),
                                "port": rk,
                            }
                        if controls.shuffled and n == n_top and other != task:
                            sk = port(p, method, options, task, p.train("source", other), pairs, seed, n)
                            p.conditions[f"{task}__shuffled__{variant}__{suffix}"] = {
                                **cond,
                                "control": "shuffled",
                                "of": variant,
                                "variant": f"shuffled:{variant}",
                                "shuffled_from": other,
                                "eval": p.evaluate("target", task, sk),
                                "port": sk,
                            }


def port_study_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The port study's report (report.port_report): per-task baselines, method aggregates
    (gap recovered), controls, teacher ceiling, costs and failure modes."""
    from loraport.report.port_report import port_report

    return port_report(run_dir, meta, records)


def _port_cell(cell: Cell, store: Store) -> None:
    """A "port" or "distill" cell: computed by the method that planned it (PortMethod.run_cell)."""
    from loraport.port import get_method

    p = cell.params
    get_method(p["method"], **p["options"]).run_cell(cell, store)


def _control_cell(cell: Cell, store: Store) -> None:
    """A random-direction twin of a port, with its per-module Frobenius norms."""
    from loraport.port.controls import random_port

    p = cell.params
    random_port(store.adapter(p["ref"]), store.adapter(cell.key), seed=p["seed"], force=True)


CELL_KINDS.add("port", CellKind(_port_cell, stage=30))
CELL_KINDS.add("distill", CellKind(_port_cell, stage=40))  # may start from another method's port
CELL_KINDS.add("control", CellKind(_control_cell, stage=50))
STUDY_KINDS.add("port", StudyKind(plan=plan_port_study, report=port_study_report))
