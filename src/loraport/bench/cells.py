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
    """A "port" or "distill" cell: computed by the method that planned it (PortMethod.run_cell)."""
    from loraport.port import get_method

    p = cell.params
    get_method(p["method"], **p["options"]).run_cell(cell, store)


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
        if p.get("quant"):  # a quantized base (the recipe_transfer study): bench.quant_eval
            from loraport.bench.quant_eval import quantized_eval

            q = p["quant"]
            result = quantized_eval(p["base"], p["task"], adapter, n=p["n"], seed=p["seed"], **q)
        else:
            result = evaluate(p["base"], p["task"], adapter=adapter, n=p["n"], seed=p["seed"])
        if p.get("judge"):  # a judged eval (the tiers study): bench.tiers_judge
            from loraport.bench.tiers_judge import judge_eval

            result = judge_eval(result, p["task"], p["judge"])
    result.save(store.eval(cell.key))


RUNNERS = {
    "train": _train,
    "teach": _teach,
    "port": _port,
    "distill": _port,
    "control": _control,
    "eval": _eval,
}
