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

Credit "transfer": X's backprop gradient on the same items, at the X snapshot of that epoch,
mapped to Y by train.fewstep.ridge_transfer over the chosen port cell's anchor pairs (their last
epoch): the linear part of a global ridge port, whatever method the port itself used.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraport.bench.snapshot_study import snapshot
from loraport.bench.store import Store
from loraport.io import atomic_file
from loraport.train.fewstep import FewStepError, check_args

FILE = "fewstep.json"


def _starts(records: list[dict[str, Any]], task: str, epochs: int) -> dict[tuple[str, int], dict[str, str]]:
    """(start name, epoch) -> {"key": the starting adapter on Y, "x": the X snapshot of that
    epoch, "port": the port cell whose anchors a transferred credit maps through}."""
    ports = [
        r for r in records if r["task"] == task and r["condition"] == "port" and r["anchor_epoch"] == epochs
    ]
    out: dict[tuple[str, int], dict[str, str]] = {}
    if not ports:
        return out
    first = min((r["variant"], -r["n_anchors"], r["seed"]) for r in ports)
    chosen = {r["epoch"]: r for r in ports if (r["variant"], -r["n_anchors"], r["seed"]) == first}
    oracle = next((r for r in records if r["task"] == task and r["condition"] == "oracle_y"), None)
    for e, r in sorted(chosen.items()):
        ref = {"x": r["snapshot"], "port": r["port"]}
        out[(f"port {r['variant']} N={r['n_anchors']}", e)] = {**ref, "key": r["port"]}
        if oracle is not None:
            out[("y_snapshot", e)] = {**ref, "key": snapshot(oracle["train"], e, epochs)}
    return out


def _factors(store: Store, key: str) -> dict[str, Any]:
    from loraport.adapters import load_adapter

    ad = load_adapter(store.adapter(key))
    return {m: ad.lowrank(m) for m in ad.modules}


def _transfer(store: Store, meta: dict[str, Any], port_key: str):
    """ridge_transfer over the anchor pairs of the run's port cell `port_key` (re-planned from
    run.json: the same study and fingerprints give the same cells)."""
    from loraport.adapters import load_adapter
    from loraport.bench.plan import make_plan
    from loraport.bench.spec import Study
    from loraport.train.fewstep import ridge_transfer

    plan = make_plan(Study(**meta["study"]), meta["bases"], meta.get("device", "cpu"))
    pairs = plan.cells[port_key].params["pairs"]

    def dense(key: str) -> dict[str, Any]:
        ad = load_adapter(store.adapter(key))
        return {m: ad.delta(m) for m in ad.modules}

    return ridge_transfer([dense(kx) for _, kx, _ in pairs], [dense(ky) for _, _, ky in pairs])


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
    if not (run_dir / "run.json").is_file():
        raise FewStepError(f"{run_dir}: not a run directory (no run.json)")
    meta = json.loads((run_dir / "run.json").read_text())
    study = meta["study"]
    if study.get("kind") != "snapshots":
        raise FewStepError(
            f"{run_dir}: few-step updates run on a snapshots study (this is {study.get('kind')!r})"
        )
    store = Store(run_dir, cache)
    from loraport.parallel import torch_threads

    with torch_threads(threads):
        rows = _run(store, meta, credits, ks, lrs, batches, batch_size, heldout_n, seed)
    with atomic_file(run_dir / FILE) as fh:
        json.dump(rows, fh, indent=1, sort_keys=True)
    from loraport.report import build_report

    build_report(run_dir)
    return rows


def _run(
    store: Store, meta: dict[str, Any], credits, ks, lrs, batches, batch_size, heldout_n, seed
) -> list[dict]:
    from loraport.models import load_model
    from loraport.tasks import get_task
    from loraport.train.fewstep import FewStep, sweep_lr

    study = meta["study"]
    records = store.load_records()
    model, tok, _ = load_model(study["target"])
    x_model = load_model(study["source"]) if "transfer" in credits else None
    epochs = study["recipe"]["epochs"]
    rows = []
    starts = {task: sorted(_starts(records, task, epochs).items()) for task in study["heldout"]}
    total, done, t0 = sum(map(len, starts.values())), 0, time.perf_counter()
    for task in study["heldout"]:
        t = get_task(task)
        items = t.items("train", batches * batch_size, seed=seed)
        upd_batches = [items[i * batch_size : (i + 1) * batch_size] for i in range(batches)]
        held = t.items("eval", heldout_n, seed=seed)
        for (start, epoch), ref in starts[task]:
            t_start = time.perf_counter()
            upd = FewStep(model, tok, _factors(store, ref["key"]), seed=seed)
            if x_model is not None:  # X at this epoch's snapshot, mapped through the port's anchors
                upd.transfer_from = FewStep(x_model[0], x_model[1], _factors(store, ref["x"]), seed=seed)
                upd.transfer = _transfer(store, meta, ref["port"])
            try:
                for credit in credits:
                    for k in ks:
                        best = sweep_lr(upd, upd_batches, credit=credit, k=k, lrs=lrs)
                        res = upd.run(upd_batches, held, credit=credit, k=k, lr=best["lr"])
                        sweep = {str(lr): v for lr, v in best["d_train"].items()}
                        row = {"task": task, "start": start, "epoch": epoch, **res.summary(seed)}
                        rows.append({**row, "lr_sweep": sweep})
            finally:
                upd.close()
                if upd.transfer_from is not None:
                    upd.transfer_from.close()
            done += 1  # one line per start: a log file or CI shows progress
            print(
                f"fewstep {done}/{total} {task} from {start} (epoch {epoch}): "
                f"{time.perf_counter() - t_start:.1f} s (elapsed {time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return rows
