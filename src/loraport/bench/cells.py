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
    from transformers.utils import logging as hf_logging

    from loraport.device import deterministic, use_device
    from loraport.errors import LoraportError
    from loraport.models.chat import use_chat_template
    from loraport.parallel import torch_threads

    hf_logging.disable_progress_bar()
    if store.has(cell.kind, cell.key):
        return {"key": cell.key, "kind": cell.kind, "cached": True, "seconds": 0.0, "error": None}
    # Float results depend on the thread count, so it is set per cell and restored afterwards; the
    # cell computes on the device its key was made for (the plan's).
    device = cell.params.get("device", "cpu")
    start = time.perf_counter()
    try:
        chat = use_chat_template(cell.params.get("chat_template", "auto"))
        with torch_threads(threads), use_device(device), deterministic(device), chat:
            RUNNERS[cell.kind](cell, store)
        error = None
    except LoraportError as e:
        error = str(e)
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


def _teach(cell: Cell, store: Store) -> None:
    from loraport.port.prompts import unlabeled_prompts
    from loraport.port.teacher import teach

    p = cell.params
    ev = p["eval"]
    prompts = unlabeled_prompts(
        p["task"], p["prompts"], p["prompt_seed"], n_eval=ev["n"], eval_seed=ev["seed"]
    )
    answers = teach(p["source"], store.adapter(p["x"]), prompts, max_new_tokens=p["max_new_tokens"])
    answers.provenance["task"] = p["task"]
    answers.save(store.teach(cell.key))


def _port(cell: Cell, store: Store) -> None:
    from loraport.models import load_config
    from loraport.port import AnchorPair, AnchorsSpec, apply_map, copy_port, fit_map, get_method

    p = cell.params
    prov = {"study_cell": cell.key, "task": p["task"]}
    out = store.adapter(cell.key)
    opts = get_method(p["method"], **p["options"]).options()
    if p["method"] == "align":
        from loraport.port.align import align_port

        align_port(
            p["source"],
            p["target"],
            store.adapter(p["x"]),
            out,
            texts=opts["texts"],
            ridge=opts["ridge"],
            force=True,
            provenance=prov,
        )
        return
    if p["method"] == "copy":
        copy_port(store.adapter(p["x"]), load_config(p["target"]), p["target"], out, force=True)
        return
    pairs = [
        AnchorPair(task=t, source=store.adapter(kx), target=store.adapter(ky)) for t, kx, ky in p["pairs"]
    ]
    spec = AnchorsSpec(source_base=p["source"], target_base=p["target"], pairs=pairs)
    configs = load_config(p["source"]), load_config(p["target"])
    if p["method"] == "spanfit":
        from loraport.port.spanfit import spanfit_port
        from loraport.port.teacher import Answers

        spanfit_port(
            spec,
            *configs,
            store.adapter(p["x"]),
            Answers.load(store.teach(p["teach"])),
            out,
            steps=opts["steps"],
            lr=opts["lr"],
            seed=p["seed"],
            force=True,
            provenance=prov,
        )
        return
    fmap = fit_map(spec, p["method"], *configs, options=p["options"], seed=p["seed"])
    apply_map(fmap, store.adapter(p["x"]), out, force=True, verify_anchors=False, provenance=prov)


def _distill(cell: Cell, store: Store) -> None:
    from loraport.port import get_method
    from loraport.port.distill import distill_port
    from loraport.port.teacher import Answers

    p = cell.params
    opts = get_method("distill", **p["options"]).options()
    distill_port(
        p["target"],
        Answers.load(store.teach(p["teach"])),
        store.adapter(cell.key),
        init=store.adapter(p["init"]) if p["init"] else None,
        steps=opts["steps"],
        seconds=opts["seconds"],
        lr=opts["lr"],
        seed=p["seed"],
        force=True,
        provenance={"study_cell": cell.key, "task": p["task"]},
    )


def _control(cell: Cell, store: Store) -> None:
    from loraport.port.controls import random_port

    p = cell.params
    random_port(store.adapter(p["ref"]), store.adapter(cell.key), seed=p["seed"], force=True)


def _eval(cell: Cell, store: Store) -> None:
    from loraport.evaluate import evaluate

    p = cell.params
    adapter = store.adapter(p["adapter"]) if p["adapter"] else None
    if adapter is not None and not store.has("port", p["adapter"]):
        from loraport.errors import LoraportError

        raise LoraportError(
            f"{cell.label}: its adapter {p['adapter']} was not produced (an earlier cell failed)"
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = evaluate(p["base"], p["task"], adapter=adapter, n=p["n"], seed=p["seed"])
    result.save(store.eval(cell.key))


RUNNERS = {
    "train": _train,
    "teach": _teach,
    "port": _port,
    "distill": _distill,
    "control": _control,
    "eval": _eval,
}
