"""Running one cell: the only code that trains, ports or evaluates on behalf of a study. Executors
call `run_cell` in this process (local) or in workers (ray); results land in the store.

`run_cell` dispatches on the cell's kind (bench.cellkinds.CELL_KINDS). This module registers the
core's kinds (train, teach, eval); the port study registers port, distill and control, and an eval
cell whose params carry a registered variant's key (quant, judge) is computed by that variant.
"""

from __future__ import annotations

import time
from typing import Any

from loraport.bench.cellkinds import CELL_KINDS, EVAL_VARIANTS, CellKind, load_cell_kinds
from loraport.bench.plan import Cell
from loraport.bench.store import Store


def run_cell(cell: Cell, store: Store, threads: int | None = None) -> dict[str, Any]:
    """Compute `cell` into `store` unless it is there already. Returns
    {"key", "kind", "cached", "seconds", "error", "oom"}; a LoraportError becomes an "error" string
    (the cell is then missing, and the report lists it) instead of stopping the study. Running out of
    torch memory does too, with "oom" set, so that an executor running cells side by side on one GPU
    can try the cell again alone."""
    import torch
    from transformers.utils import logging as hf_logging

    from loraport.device import deterministic, use_device
    from loraport.errors import LoraportError
    from loraport.models.chat import use_chat_template
    from loraport.parallel import torch_threads

    hf_logging.disable_progress_bar()
    load_cell_kinds()
    result = {"key": cell.key, "kind": cell.kind, "cached": True, "seconds": 0.0, "error": None, "oom": False}
    if store.has(cell.kind, cell.key):
        return result
    # Float results depend on the thread count, so it is set per cell and restored afterwards; the
    # cell computes on the device its key was made for (the plan's).
    device = cell.params.get("device", "cpu")
    start = time.perf_counter()
    error, oom = None, False
    try:
        chat = use_chat_template(cell.params.get("chat_template", "auto"))
        with torch_threads(threads), use_device(device), deterministic(device), chat:
            CELL_KINDS.get(cell.kind).run(cell, store)
    except LoraportError as e:
        error = str(e)
    except torch.OutOfMemoryError as e:
        error, oom = f"{cell.label}: out of {device} memory ({str(e).splitlines()[0][:120]})", True
    finally:
        if device.startswith("cuda"):  # cached blocks would starve the other workers on this GPU
            torch.cuda.empty_cache()
    return {
        **result,
        "cached": False,
        "seconds": round(time.perf_counter() - start, 3),
        "error": error,
        "oom": oom,
    }


def _train(cell: Cell, store: Store) -> None:
    from loraport.train import Recipe, train_lora

    p = cell.params
    if p.get("shipped"):  # the package's file, checked against its manifest (zoo.shipped_adapters)
        from loraport.zoo.shipped_adapters import copy_shipped

        copy_shipped(p["shipped"], store.adapter(cell.key))
        return
    train_lora(
        p["base"], p["task"], Recipe(**p["recipe"]), out=store.adapter(cell.key), force=True, progress=False
    )


def _teach(cell: Cell, store: Store) -> None:
    from loraport.port.synth import charge, teach_prompts
    from loraport.port.teacher import teach

    p = cell.params
    ev = p["eval"]
    # the task's prompts, or (an `examples` option) a few of them and prompts synthesized from them
    prompts, synthesis = teach_prompts(
        p["task"],
        p["prompts"],
        p["prompt_seed"],
        n_eval=ev["n"],
        eval_seed=ev["seed"],
        examples=p.get("examples"),
        synthesizer=p.get("synth_base"),
        mode=p.get("synthesis", "listing"),
    )
    answers = teach(p["source"], store.adapter(p["x"]), prompts, max_new_tokens=p["max_new_tokens"])
    answers = charge(answers, synthesis)
    answers.provenance["task"] = p["task"]
    answers.save(store.teach(cell.key))


def _eval(cell: Cell, store: Store) -> None:
    import warnings

    from loraport.errors import LoraportError
    from loraport.evaluate import evaluate

    p = cell.params
    adapter = store.adapter(p["adapter"]) if p["adapter"] else None
    if adapter is not None and not store.has("port", p["adapter"]):
        raise LoraportError(
            f"{cell.label}: its adapter {p['adapter']} was not produced (an earlier cell failed)"
        )
    variants = [(k, EVAL_VARIANTS.get(k)) for k in EVAL_VARIANTS if p.get(k)]
    replacing = [k for k, v in variants if v.evaluate is not None]
    if len(replacing) > 1:
        raise LoraportError(f"{cell.label}: eval variants {', '.join(replacing)} each replace the evaluation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if replacing:  # e.g. a quantized base (the recipe_transfer study): bench.quant_eval
            result = EVAL_VARIANTS.get(replacing[0]).evaluate(p, adapter)
        else:
            result = evaluate(p["base"], p["task"], adapter=adapter, n=p["n"], seed=p["seed"])
        for _, variant in variants:  # e.g. a judge's verdicts (the tiers study): bench.tiers_judge
            if variant.after is not None:
                result = variant.after(result, p)
    result.save(store.eval(cell.key))


CELL_KINDS.add("train", CellKind(_train, stage=10))
CELL_KINDS.add("teach", CellKind(_teach, stage=20, done=lambda store, key: store.teach(key).is_file()))
CELL_KINDS.add("eval", CellKind(_eval, stage=90, done=lambda store, key: store.eval(key).is_file()))
