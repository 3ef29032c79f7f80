"""A model judge on a subset of an eval cell's items (the tiers study's `judge:`; evaluate.judge).

    result = judge_eval(result, "math_proc_add_sub", {"model": "smollm2-135m-instruct", "n": 25,
                                                      "max_new_tokens": 16})

The judge reads the outputs of the task's primary scorer on the first `n` items (by item order)
and adds its verdicts as scorer "judge:<model name>" on those items only; the report compares
it with each extractor on the items both scored. The judge model is loaded once per process.
"""

from __future__ import annotations

from typing import Any

from loraport.evaluate.run import EvalResult

_JUDGES: dict[tuple, Any] = {}


def judge_eval(result: EvalResult, task: str, spec: dict[str, Any] | list[dict[str, Any]]) -> EvalResult:
    """`result` with the judge's verdicts on its first spec["n"] items added (see the module); a
    list of specs adds each judge's verdicts in turn, every judge reading the primary scorer's
    outputs."""
    if isinstance(spec, list):
        for one in spec:
            result = judge_eval(result, task, one)
        return result
    from loraport.evaluate.judge import Judge, JudgeConfig, eval_items

    key = (spec["model"], spec["max_new_tokens"])
    if key not in _JUDGES:
        _JUDGES[key] = Judge.load(JudgeConfig(model=spec["model"], max_new_tokens=spec["max_new_tokens"]))
    judge = _JUDGES[key]
    primary = result.scorers()[0]
    ids = [r.id for r in result.records if r.scorer == primary][: spec["n"]]
    keep = set(ids)
    subset = EvalResult(result.task, [r for r in result.records if r.id in keep], result.provenance)
    judged = judge.judge_result(subset, eval_items(result, task), scorer=primary)
    new = [r for r in judged.records if r.scorer == judge.name]
    return EvalResult(result.task, [*result.records, *new], judged.provenance)
