"""Study kinds: what a study computes and how its report reads, one module per kind.

A kind is a `StudyKind` registered in STUDY_KINDS by its own module: `plan` adds its cells and
conditions through the planner core (bench.plan.Planner: train, teach and eval cells, keys and
dependencies), `report` turns the run's stored records into its metrics, summary.json, report.md
and figures. The port study (bench/port_study.py) and recipe_transfer (bench/recipe_study.py)
are the kinds today. A new kind is one module,
imported at the bottom of this file:

    # bench/base_only_study.py: the target base alone on each held-out task
    def plan(p: Planner, study: Study) -> None:
        for task in study.heldout:
            p.conditions[f"{task}__base_y"] = {"task": task, "condition": "base_y",
                                               "eval": p.evaluate("target", task, None)}

    def report(run_dir: Path, meta: dict, records: list[dict]) -> dict:
        ...  # metrics over `records`, then summary.json and report.md in run_dir

    STUDY_KINDS.add("base_only", StudyKind(plan, report))

`loraport report` imports this module and every kind's module, so a kind module imports nothing
torch-heavy at its top (the planner, the spec and the tasks load inside `plan`); this module
itself imports only the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraport.errors import LoraportError
from loraport.registry import Registry

if TYPE_CHECKING:
    from loraport.bench.plan import Planner
    from loraport.bench.spec import Study


@dataclass(frozen=True)
class StudyKind:
    """One study kind's contributions.

    plan(planner, study): add the kind's cells and conditions (`planner.add`, `.train`, `.teach`,
    `.evaluate`; a condition names the eval cell whose record the report reads).
    report(run_dir, meta, records) -> summary: the kind's metrics over the stored records (never
    in-memory state) and its report files (summary.json, report.md, figures/) in `run_dir`.
    """

    plan: Callable[[Planner, Study], None]
    report: Callable[[Path, dict[str, Any], list[dict[str, Any]]], dict[str, Any]]


#: Study kinds by name (a study's `kind:`, default "port"). A miss lists the valid names.
STUDY_KINDS: Registry[StudyKind] = Registry("study kind", LoraportError)


# Study kinds register themselves when imported (a new kind: one module, imported here).
from loraport.bench import port_study, recipe_study, snapshot_study, tiers_study  # noqa: E402, F401  (registration)
