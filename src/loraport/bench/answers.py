"""Skill or format? What a condition answers on a choice task, against chance.

On a multiple-choice task an accuracy alone can mislead: a condition that answers "C" on every item
scores the share of items whose answer is C, and a gap measured from a base model that never writes a
parseable letter credits any port that learns the format. A report therefore shows, per choice task,
its chance accuracy and each condition's answer distribution, and calls out a condition whose answers
are (nearly) constant or whose accuracy is within its 95% CI of chance, whatever its gap.

Records keep each item's answer for the scorers in `CHOICE_SCORERS` (`bench.runner.write_records`),
and the task's chance accuracy as `record["chance"]`. Records written before they kept answers have
none, and this section is then left out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from loraport.bench.metrics import ORACLE_CHECKPOINT

__all__ = [
    "NEAR_CONSTANT",
    "NO_ANSWER",
    "answer_shares",
    "choice_summary",
    "describe_flag",
    "wilson_interval",
]

#: A condition whose most common answer covers at least this share of the items is "(nearly)
#: constant"; an item without a parseable answer counts as the answer NO_ANSWER.
NEAR_CONSTANT = 0.9
NO_ANSWER = "none"


def answer_shares(record: dict[str, Any], scorer: str) -> dict[str, float] | None:
    """Share of items per answer (NO_ANSWER for unparseable ones), most common first; None when the
    record kept no answers for `scorer`."""
    answers = record.get("scorers", {}).get(scorer, {}).get("answers")
    if not answers:
        return None
    counts = Counter(NO_ANSWER if a is None else str(a) for a in answers)
    n = len(answers)
    return {a: round(c / n, 4) for a, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (well behaved at 0 and at 1, unlike k/n ± 2se)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def _condition(record: dict[str, Any]) -> str:
    name, task = record["name"], record["task"]
    return name[len(task) + 2 :] if name.startswith(task + "__") else record.get("condition", name)


def choice_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per choice task: its chance accuracy, the scorer its metrics use, and per condition the answer
    distribution, accuracy with its 95% Wilson interval and the flags (`constant`, `at_chance`);
    plus the flagged conditions as one list. Empty when no record kept answers."""
    tasks: dict[str, dict[str, Any]] = {}
    flagged: list[dict[str, Any]] = []
    for r in sorted(records, key=lambda r: r["name"]):
        scorer, chance = r.get("primary"), r.get("chance")
        if chance is None or scorer is None or "missing" in r or r["condition"] == ORACLE_CHECKPOINT:
            continue
        shares = answer_shares(r, scorer)
        if shares is None:
            continue
        correct = r["scorers"][scorer]["correct"]
        k, n = int(sum(correct)), len(correct)
        lo, hi = wilson_interval(k, n)
        top, top_share = next(iter(shares.items()))
        flags = []
        if top_share >= NEAR_CONSTANT:
            flags.append("constant")
        if lo <= chance <= hi:
            flags.append("at_chance")
        row = {
            "shares": shares,
            "accuracy": round(k / n, 4),
            "ci": [round(lo, 4), round(hi, 4)],
            "n": n,
            "flags": flags,
        }
        task = tasks.setdefault(r["task"], {"chance": chance, "scorer": scorer, "conditions": {}})
        task["conditions"][_condition(r)] = row
        if flags:
            flagged.append(
                {"task": r["task"], "condition": _condition(r), "top": top, "top_share": top_share, **row}
            )
    return {"tasks": tasks, "flagged": flagged} if tasks else {}


def describe_flag(f: dict[str, Any], chance: float) -> str:
    """One failure-mode line for a flagged condition."""
    parts = []
    if "constant" in f["flags"]:
        parts.append(f"answers {f['top']!r} on {f['top_share']:.0%} of items")
    if "at_chance" in f["flags"]:
        lo, hi = f["ci"]
        parts.append(
            f"accuracy {f['accuracy']:.3f} (95% CI {lo:.3f} … {hi:.3f}) includes chance {chance:.3f}"
        )
    return f"- Constant or chance-level answers: {f['condition']} on {f['task']}: " + "; ".join(parts) + "."
