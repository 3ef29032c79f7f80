"""An eval cell on a quantized base: fake-quantize the base's linears, then apply the adapter in
full precision (as PEFT applies one to a quantized base: y = Q(W)x + ΔWx), then score the items.

    result = quantized_eval("tiny-llama-y", "math_sum_more", adapter, n=300, seed=0,
                            scheme="awq_lite", calibration={"n": 32, "seed": 0})

Calibrated schemes (AWQ-lite, GPTQ-lite) collect each linear's inputs on the full-precision base,
without the adapter, from `calibration["n"]` items of the task's *train* split (prompt + answer, raw
text); a calibration text that is also an eval prompt is an error, so calibration never sees what is
scored. Other schemes need no data, and the calibration options do not enter their cache keys.
The bench runs it for an eval cell whose params carry "quant" (bench.cells).
"""

from __future__ import annotations

import os
from typing import Any

from loraport.errors import LoraportError


def calibration_texts(task: str, n: int, seed: int, eval_n: int, eval_seed: int) -> list[str]:
    """`n` train items of `task` as raw text; LoraportError if one's prompt is an eval prompt."""
    from loraport.tasks import resolve_task

    t = resolve_task(task)
    cap = t.available("train")
    items = t.items("train", n if cap is None else min(n, cap), seed=seed)
    cap = t.available("eval")
    scored = {
        it.prompt for it in t.items("eval", eval_n if cap is None else min(eval_n, cap), seed=eval_seed)
    }
    clash = next((it for it in items if it.prompt in scored), None)
    if clash is not None:
        raise LoraportError(
            f"calibration data for {task}: train item {clash.id} is also an eval item; "
            "calibrate on items the evaluation does not score"
        )
    return [it.prompt + it.completion() for it in items]


def quantize_and_merge(model, scheme, adapter=None, calibration=None):
    """Fake-quantize `model`'s linears with `scheme` (a name or quantizer; `calibration`: inputs
    per linear for calibrated schemes), *then* merge `adapter` in full precision, so each weight
    becomes Q(W) + ΔW. Returns (per-module QuantStats, the adapter's provenance or None)."""
    from loraport.evaluate.merge import merge_adapter
    from loraport.quant import quantize_model

    stats = quantize_model(model, scheme, calibration=calibration)
    return stats, (merge_adapter(model, adapter) if adapter is not None else None)


def quantized_base(base: str, task: str, scheme: str, calibration: dict[str, Any] | None, n: int, seed: int):
    """`base` loaded and fake-quantized with `scheme` as an eval cell of `task` (n, seed) does it:
    calibrated schemes on `calibration` train items of the task. Returns (model, tokenizer, ref,
    per-module QuantStats); bench.recipe_measures reuses it, so its losses see the same weights."""
    from loraport.models import load_model
    from loraport.quant import calibration_batches, collect_inputs, get_quantizer, quantize_model

    quant = get_quantizer(scheme)
    model, tokenizer, ref = load_model(base)
    if tokenizer is None:
        raise LoraportError(f"base {base}: has no tokenizer, so it cannot be evaluated on text")
    inputs = None
    if quant.calibrated:
        cal = calibration or {"n": 32, "seed": 0}
        texts = calibration_texts(task, cal["n"], cal["seed"], n, seed)
        inputs = collect_inputs(model, calibration_batches(tokenizer, texts))
    stats = quantize_model(model, quant, calibration=inputs)
    return model, tokenizer, ref, stats


def quantized_eval(
    base: str,
    task: str,
    adapter: str | os.PathLike[str] | None,
    *,
    n: int,
    seed: int,
    scheme: str,
    calibration: dict[str, Any] | None = None,
):
    """The EvalResult of `base` quantized with `scheme` (+ `adapter`, full precision) on `task`."""
    import torch

    from loraport.evaluate.merge import merge_adapter
    from loraport.evaluate.run import evaluate_items
    from loraport.tasks import resolve_task
    from loraport.tasks.base import warn_if_small

    t = resolve_task(task)
    model, tokenizer, ref, stats = quantized_base(base, task, scheme, calibration, n, seed)
    adapter_prov = merge_adapter(model, adapter) if adapter is not None else None
    cap = t.available("eval")
    items = t.items("eval", n if cap is None else min(n, cap), seed=seed)
    warn_if_small(t, len(items))
    result = evaluate_items(model, tokenizer, items, t.scorers, task=t.name)
    errors = [s.weight_error for s in stats.values()]
    result.provenance = {
        **result.provenance,
        "base": ref.provenance(),
        "adapter": adapter_prov,
        "task": t.name,
        "eval_seed": seed,
        "n": len(items),
        "torch": torch.__version__,
        "quant": {
            "scheme": scheme,
            "modules": len(stats),
            "weight_error_mean": sum(errors) / max(len(errors), 1),
            "seconds": round(sum(s.seconds for s in stats.values()), 3),
        },
    }
    return result
