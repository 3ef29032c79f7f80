"""The snapshots study: which checkpoint of an X adapter ports best, early or late? (issue 20)

    name: snapshots
    kind: snapshots
    source: tiny-qwen2-x
    target: tiny-llama-y
    anchors: [math_add, ...]
    heldout: [math_sum_more]
    methods: {global_ridge: {}}
    n_anchors: [4]
    recipe: {epochs: 6, ...}
    snapshots: [1, 3, 6]            # X adapter epochs to port (early / middle / late)
    anchor_snapshots: [1, 6]        # optional: anchor adapters' epochs (default: the last)

    loraport bench studies/snapshots.yaml --out runs/snapshots

The trainer keeps a checkpoint per epoch (train_lora writes `checkpoints/epoch-K/` inside the
train cell's adapter folder), so a snapshot is no cell of its own: it is the folder
`<train key>/checkpoints/epoch-K` of the store, addressed like an adapter key (SNAPSHOT). The last
epoch is the train cell itself, so the late snapshot's ports are the very cells a port study with
the same recipe, anchors and seeds computes (and reuses from a shared cache).

Per held-out task: the target base alone (base_y), Y's own adapter (oracle_y, the last epoch), the
source base alone (base_x); per X snapshot its accuracy on X (x_snapshot); per seed, N, method
variant, X snapshot and anchor snapshot, the port evaluated on Y (port). Records carry epoch and
anchor_epoch, and "snapshot": the X adapter's store key (`<train key>/checkpoints/epoch-K`;
the record's provenance.adapter names only the folder's last part for a snapshot). Metrics and report: report/snapshot_report.py (stored records only).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from loraport.bench.kinds import STUDY_KINDS, KindOptions, StudyKind

if TYPE_CHECKING:
    from loraport.bench.plan import Planner
    from loraport.bench.spec import Study

#: Where epoch K of a train cell's adapter lives in the store, relative to the adapters folder.
SNAPSHOT = "{key}/checkpoints/epoch-{epoch}"


def snapshot(train_key: str, epoch: int, epochs: int) -> str:
    """The store key of a train cell's adapter at `epoch` (the train key itself at the last)."""
    return train_key if epoch == epochs else SNAPSHOT.format(key=train_key, epoch=epoch)


class SnapshotOptions(KindOptions):
    """The snapshots study's own spec fields."""

    snapshots: list[int] = Field(
        default_factory=list, description="snapshots: epochs of the X adapters to port (1..recipe.epochs)"
    )
    anchor_snapshots: list[int] = Field(
        default_factory=list, description="snapshots: epochs of the anchor adapters (default: the last)"
    )

    def check(self, study: Study) -> None:
        for key in ("snapshots", "anchor_snapshots"):
            epochs = getattr(self, key)
            for e in epochs:
                if not 1 <= e <= study.recipe.epochs:
                    raise ValueError(
                        f"{key}: snapshot epoch {e} does not exist (the recipe trains {study.recipe.epochs} "
                        f"epochs, so checkpoints are epochs 1..{study.recipe.epochs})"
                    )
            if len(set(epochs)) < len(epochs):
                raise ValueError(
                    f"{key}: epoch {next(e for e in epochs if epochs.count(e) > 1)} is listed twice"
                )
        if not self.snapshots:
            raise ValueError("snapshots: a snapshots study lists at least one epoch to port")
        if not study.methods or not study.anchors:
            raise ValueError("methods: a snapshots study ports with at least one method and needs anchors")


def plan_snapshot_study(p: Planner, study: Study) -> None:
    from loraport.bench.port_study import anchor_pairs, anchor_subset, port, target_baselines
    from loraport.bench.spec import variant_name
    from loraport.tasks import get_task

    epochs = study.recipe.epochs
    anchor_epochs = study.anchor_snapshots or [epochs]
    for task in study.heldout:
        common = {"task": task, "domain": get_task(task).domain}
        target_baselines(p, task, common)
        p.conditions[f"{task}__base_x"] = {
            **common,
            "condition": "base_x",
            "eval": p.evaluate("source", task, None),
        }
        x_train = p.train("source", task)
        for e in study.snapshots:
            x_key = snapshot(x_train, e, epochs)
            p.conditions[f"{task}__x__e{e}"] = {
                **common,
                "condition": "x_snapshot",
                "epoch": e,
                "snapshot": x_key,
                "eval": p.evaluate("source", task, x_key),
                "train": x_train,
            }
        for n in study.n_anchors:
            for seed in study.seeds:
                anchors = anchor_subset(study.anchors, n, seed, "all")
                trains = anchor_pairs(p, anchors)
                for ae in anchor_epochs:
                    pairs = [(a, snapshot(kx, ae, epochs), snapshot(ky, ae, epochs)) for a, kx, ky in trains]
                    for method, options in study.method_variants():
                        if options.get("k", 0) > n:
                            p.skipped.append(f"{variant_name(method, options)} at N={n}: K exceeds N")
                            continue
                        variant = variant_name(method, options)
                        for e in study.snapshots:
                            key = port(p, method, options, task, snapshot(x_train, e, epochs), pairs, seed, n)
                            p.conditions[f"{task}__{variant}__N{n}__s{seed}__e{e}__a{ae}"] = {
                                **common,
                                "condition": "port",
                                "variant": variant,
                                "n_anchors": n,
                                "seed": seed,
                                "anchors": anchors,
                                "epoch": e,
                                "anchor_epoch": ae,
                                "snapshot": snapshot(x_train, e, epochs),
                                "eval": p.evaluate("target", task, key),
                                "port": key,
                            }


def snapshot_study_report(
    run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]
) -> dict[str, Any]:
    """The snapshots report (report.snapshot_report): per snapshot X accuracy, ported Y accuracy and
    gap_recovered with CIs, and the finding lines the CIs support."""
    from loraport.report.snapshot_report import snapshot_report

    return snapshot_report(run_dir, meta, records)


def snapshot_results(folder: str, meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The study's section of docs/results.md (report.snapshot_report.results_section)."""
    from loraport.report.snapshot_report import results_section

    return results_section(folder, meta, summary)


STUDY_KINDS.add(
    "snapshots",
    StudyKind(
        plan=plan_snapshot_study,
        report=snapshot_study_report,
        options=SnapshotOptions,
        results=snapshot_results,
    ),
)
