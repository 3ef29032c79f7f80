"""Few-step updates on a finished snapshots run: how far do a handful of cheap steps on Y go from
each snapshot time? (issue 20, part 2; the library is train/fewstep.py)

    rows = run_fewsteps("runs/snapshots", credits=("backprop", "dfa"), ks=(1, 5), lrs=(0.01, 0.1, 1.0))

For each held-out task and X snapshot epoch of the run, two frozen starting points on Y: the port
of that snapshot (the run's first method variant, largest N, first seed, anchors at their last
epoch) and Y's own adapter at the same epoch (the seed's setting: a snapshot of the model being
updated). From each, every credit and k: the step size is chosen per (start, epoch, credit, k) on
the update batches alone (sweep_lr, no held-out item is looked at), then the update is measured on
`heldout_n` eval items. Rows go to `fewstep.json` in the run folder, which the snapshots report
reads (report.snapshot_report.fewstep_section); the report is rebuilt at the end.

The transferred credit needs a map of weight gradients from X to Y (FewStep's `transfer`); a
snapshots run has none between bases of different shapes, so this driver offers backprop and DFA,
and "transfer" only when X and Y are the same base (the identity map).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraport.bench.snapshot_study import snapshot
from loraport.bench.store import Store
from loraport.io import atomic_file
from loraport.train.fewstep import FewStepError, check_args

FILE = "fewstep.json"


def _starts(records: list[dict[str, Any]], task: str, epochs: int) -> dict[tuple[str, int], str]:
    """(start name, epoch) -> the store key of that starting adapter on Y."""
    ports = [
        r for r in records if r["task"] == task and r["condition"] == "port" and r["anchor_epoch"] == epochs
    ]
    out: dict[tuple[str, int], str] = {}
    if ports:
        first = sorted(ports, key=lambda r: (r["variant"], -r["n_anchors"], r["seed"]))[0]
        for r in ports:
            if (r["variant"], r["n_anchors"], r["seed"]) == (
                first["variant"],
                first["n_anchors"],
                first["seed"],
            ):
                out[(f"port {r['variant']} N={r['n_anchors']}", r["epoch"])] = r["port"]
    oracle = next((r for r in records if r["task"] == task and r["condition"] == "oracle_y"), None)
    if oracle is not None:
        for e in sorted({r["epoch"] for r in ports}):
            out[("y_snapshot", e)] = snapshot(oracle["train"], e, epochs)
    return out


def run_fewsteps(
    run_dir: str | Path,
    *,
    credits: Sequence[str] = ("backprop", "dfa"),
    ks: Sequence[int] = (1, 5),
    lrs: Sequence[float] = (0.01, 0.1, 1.0),
    batches: int = 4,
    batch_size: int = 8,
    heldout_n: int = 32,
    seed: int = 0,
    cache: str | Path | None = None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Few-step rows for every task × start × epoch × credit × k of a snapshots run (see above)."""
    check_args(list(credits), list(ks), list(lrs))
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    study = meta["study"]
    if study.get("kind") != "snapshots":
        raise FewStepError(
            f"{run_dir}: few-step updates run on a snapshots study (this is {study.get('kind')!r})"
        )
    if "transfer" in credits and study["source"] != study["target"]:
        raise FewStepError("credit 'transfer' needs a weight-gradient map from X to Y; this run has none")
    store = Store(run_dir, cache)
    from loraport.parallel import torch_threads

    with torch_threads(threads):
        rows = _run(store, study, credits, ks, lrs, batches, batch_size, heldout_n, seed)
    with atomic_file(run_dir / FILE) as fh:
        json.dump(rows, fh, indent=1, sort_keys=True)
    from loraport.report import build_report

    build_report(run_dir)
    return rows


def _run(
    store: Store, study: dict[str, Any], credits, ks, lrs, batches, batch_size, heldout_n, seed
) -> list[dict]:
    records = store.load_records()
    from loraport.adapters import load_adapter
    from loraport.models import load_model
    from loraport.tasks import get_task
    from loraport.train.fewstep import FewStep, sweep_lr

    model, tok, _ = load_model(study["target"])
    epochs = study["recipe"]["epochs"]
    rows = []
    for task in study["heldout"]:
        t = get_task(task)
        items = t.items("train", batches * batch_size, seed=seed)
        upd_batches = [items[i * batch_size : (i + 1) * batch_size] for i in range(batches)]
        held = t.items("eval", heldout_n, seed=seed)
        for (start, epoch), key in sorted(_starts(records, task, epochs).items()):
            ad = load_adapter(store.adapter(key))
            factors = {m: ad.lowrank(m) for m in ad.modules}
            upd = FewStep(model, tok, factors, seed=seed)
            try:
                for credit in credits:
                    for k in ks:
                        best = sweep_lr(upd, upd_batches, credit=credit, k=k, lrs=lrs)
                        res = upd.run(upd_batches, held, credit=credit, k=k, lr=best["lr"])
                        sweep = {str(lr): v for lr, v in best["d_train"].items()}
                        rows.append(
                            {
                                "task": task,
                                "start": start,
                                "epoch": epoch,
                                **res.summary(seed),
                                "lr_sweep": sweep,
                            }
                        )
            finally:
                upd.close()
    return rows
