"""Running one cell: the only code that trains, ports or evaluates on behalf of a study. Executors
call `run_cell` in this process (local) or in workers (ray); results land in the store."""

from __future__ import annotations

import time
from typing import Any

from loraport.bench.plan import Cell
from loraport.bench.store import Store


def run_cell(cell: Cell, store: Store, threads: int | None = None) -> dict[str, Any]:
    """Compute `cell` into `store` unless it is there already. Returns
    {"key", "kind", "cached", "seconds", "error"}; a LoraportError becomes an "error" string (the cell
    is then missing, and the report lists it) instead of stopping the study."""
    import torch
    from transformers.utils import logging as hf_logging

    from loraport.errors import LoraportError

    hf_logging.disable_progress_bar()
    if store.has(cell.kind, cell.key):
        return {"key": cell.key, "kind": cell.kind, "cached": True, "seconds": 0.0, "error": None}
    # Float results depend on the thread count, so it is set per cell and restored afterwards.
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        {"train": _train, "port": _port, "eval": _eval}[cell.kind](cell, store)
        error = None
    except LoraportError as e:
        error = str(e)
    finally:
        torch.set_num_threads(before)
    return {
        "key": cell.key,
        "kind": cell.kind,
        "cached": False,
        "seconds": round(time.perf_counter() - start, 3),
        "error": error,
    }


def _train(cell: Cell, store: Store) -> None:
    from loraport.train import Recipe, train_lora

    p = cell.params
    train_lora(
        p["base"], p["task"], Recipe(**p["recipe"]), out=store.adapter(cell.key), force=True, progress=False
    )


def _port(cell: Cell, store: Store) -> None:
    from loraport.models import load_config
    from loraport.port import AnchorPair, AnchorsSpec, apply_map, fit_map

    p = cell.params
    pairs = [
        AnchorPair(task=t, source=store.adapter(kx), target=store.adapter(ky)) for t, kx, ky in p["pairs"]
    ]
    spec = AnchorsSpec(source_base=p["source"], target_base=p["target"], pairs=pairs)
    fmap = fit_map(
        spec,
        p["method"],
        load_config(p["source"]),
        load_config(p["target"]),
        options=p["options"],
        seed=p["seed"],
    )
    apply_map(
        fmap,
        store.adapter(p["x"]),
        store.adapter(cell.key),
        force=True,
        verify_anchors=False,
        provenance={"study_cell": cell.key, "task": p["task"]},
    )


def _eval(cell: Cell, store: Store) -> None:
    from loraport.evaluate import evaluate

    p = cell.params
    adapter = store.adapter(p["adapter"]) if p["adapter"] else None
    if adapter is not None and not store.has("train", p["adapter"]):
        from loraport.errors import LoraportError

        raise LoraportError(
            f"{cell.label}: its adapter {p['adapter']} was not produced (an earlier cell failed)"
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = evaluate(p["base"], p["task"], adapter=adapter, n=p["n"], seed=p["seed"])
    result.save(store.eval(cell.key))
