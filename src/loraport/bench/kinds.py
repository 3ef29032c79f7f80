"""Study kinds: what a study computes and how its report reads, one module per kind.

A kind is a `StudyKind` registered in STUDY_KINDS by its own module: `plan` adds its cells and
conditions through the planner core (bench.plan.Planner: train, teach and eval cells, keys and
dependencies), `report` turns the run's stored records into its metrics, summary.json, report.md
and figures, and `options` (optional) is the pydantic model of the kind's own spec fields
(KindOptions). Cells of a kind the core does not know, and eval cells computed another way, are
registered by the kind's module too (bench.cellkinds), so a new kind edits no shared file. The
kinds today: port (bench/port_study.py), recipe_transfer, snapshots and tiers. A new kind is one
module, imported at the bottom of this file:

    # bench/base_only_study.py: the target base alone on each held-out task
    def plan(p: Planner, study: Study) -> None:
        for task in study.heldout:
            p.conditions[f"{task}__base_y"] = {"task": task, "condition": "base_y",
                                               "eval": p.evaluate("target", task, None)}

    def report(run_dir: Path, meta: dict, records: list[dict]) -> dict:
        ...  # metrics over `records`, then summary.json and report.md in run_dir

    class BaseOnlyOptions(KindOptions):      # its own spec fields, beside the core's in the YAML
        bootstrap: int = Field(1000, ge=100)

    STUDY_KINDS.add("base_only", StudyKind(plan, report, BaseOnlyOptions))

`loraport report` imports this module and every kind's module, so a kind module imports nothing
torch-heavy at its top (the planner, the spec and the tasks load inside `plan`); this module
itself imports only the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from loraport.errors import LoraportError
from loraport.registry import Registry

if TYPE_CHECKING:
    from loraport.bench.plan import Planner
    from loraport.bench.spec import Study


class KindOptions(BaseModel):
    """A study kind's own spec fields (the port study has none: this base class).

    They sit beside the core fields in the study YAML (`tiers: [...]` next to `target:`); the
    study validates them with its kind's subclass (extra="forbid", so a typo is an unknown field
    with the closest valid name), reads them as its own attributes (`study.tiers`), and writes
    them back flat in `Study.to_yaml()` and run.json (left out while empty). A field of another
    kind is an error unless empty. Field validators check one field; `check` checks the fields
    against the rest of the resolved study.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self, study: Study) -> None:
        """Raise ValueError("<field>: why") where these fields do not fit `study` (its anchors,
        held-out tasks and recipe are resolved by then)."""

    def bases(self) -> tuple[str, ...]:
        """Bases beyond the study's source and target whose fingerprints its cells' keys need."""
        return ()


@dataclass(frozen=True)
class StudyKind:
    """One study kind's contributions.

    plan(planner, study): add the kind's cells and conditions (`planner.add`, `.train`, `.teach`,
    `.evaluate`; a condition names the eval cell whose record the report reads).
    report(run_dir, meta, records) -> summary: the kind's metrics over the stored records (never
    in-memory state) and its report files (summary.json, report.md, figures/) in `run_dir`.
    options: the model of the kind's own spec fields (KindOptions: none).
    results(folder, meta, summary) -> lines: the study's section of docs/results.md (markdown,
    from its run.json and summary.json only; report.results writes the page); None: the
    summary's `findings` lines under a heading.
    """

    plan: Callable[[Planner, Study], None]
    report: Callable[[Path, dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
    options: type[KindOptions] = KindOptions
    results: Callable[[str, dict[str, Any], dict[str, Any]], list[str]] | None = None


#: Study kinds by name (a study's `kind:`, default "port"). A miss lists the valid names.
STUDY_KINDS: Registry[StudyKind] = Registry("study kind", LoraportError)


def option_fields() -> dict[str, list[str]]:
    """Each kind-specific spec field -> the kinds that declare it."""
    out: dict[str, list[str]] = {}
    for name in STUDY_KINDS:
        for field in STUDY_KINDS.get(name).options.model_fields:
            out.setdefault(field, []).append(name)
    return out


# Study kinds register themselves when imported (a new kind: one module, imported here).
from loraport.bench import port_study, recipe_study, snapshot_study, tiers_study  # noqa: E402, F401  (registration)
