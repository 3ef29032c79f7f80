"""Before and after a port, on the user's own labelled items: base target, target + port, and the
teacher (source + source adapter) scored on the same items with the same scorer.

    summary = before_after("gemma3-270m", "out/gemma-lora", "labelled.jsonl",
                           source="smollm2-135m-instruct", source_adapter="my-smollm2-lora")
    summary["conditions"]["port"]["accuracy"], summary["teacher_ratio"]

Written next to the ported adapter as `loraport_eval.json` by `loraport port --eval`.
"""

from __future__ import annotations

import os
from typing import Any

from loraport.evaluate.run import evaluate
from loraport.tasks import load_eval_jsonl

EVAL_SUMMARY = "loraport_eval.json"


def before_after(
    target: str,
    ported: str | os.PathLike[str],
    eval_data: str | os.PathLike[str],
    *,
    source: str | None = None,
    source_adapter: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Accuracy (the items' primary scorer) of each condition, and the teacher ratio: the port's gain
    over base divided by the teacher's (None when the teacher is no better than base: undefined).
    The teacher is scored only when both `source` and `source_adapter` are given."""
    task = load_eval_jsonl(eval_data)
    n = task.available("eval")
    runs = {"base": (target, None), "port": (target, ported)}
    if source is not None and source_adapter is not None:
        runs["teacher"] = (source, source_adapter)
    conditions = {}
    for name, (base, adapter) in runs.items():
        res = evaluate(base, task, adapter=adapter, n=n, seed=0, device=device)
        scorer = task.scorers[0]
        s = res.summary()[scorer]
        conditions[name] = {
            "base": str(base),
            "adapter": None if adapter is None else str(adapter),
            "scorer": scorer,
            "n": s["n"],
            "correct": s["correct"],
            "invalid": s["invalid"],
            "accuracy": round(s["accuracy"], 4),
        }
    ratio = None
    if "teacher" in conditions:
        lift = conditions["teacher"]["accuracy"] - conditions["base"]["accuracy"]
        if lift > 0:
            ratio = round((conditions["port"]["accuracy"] - conditions["base"]["accuracy"]) / lift, 4)
    return {"eval_data": str(eval_data), "n": n, "conditions": conditions, "teacher_ratio": ratio}
