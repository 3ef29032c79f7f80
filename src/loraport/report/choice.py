"""The report's section on choice tasks: chance, each condition's answers, and the flags."""

from __future__ import annotations

from typing import Any

from loraport.bench.answers import NEAR_CONSTANT


def choice_section(choice: dict[str, Any]) -> list[str]:
    """Markdown lines of the section (none when no record kept its answers)."""
    if not choice:
        return []
    L = [
        "",
        "## Choice tasks: skill or format?",
        "",
        "Per condition: accuracy with its 95% Wilson interval and the share of items given each answer "
        f"(`none`: no parseable answer). Flags: **constant** (one answer on ≥ {NEAR_CONSTANT:.0%} of "
        "items), **chance** (the interval includes the task's chance accuracy). A flagged cell is listed "
        "under failure modes whatever its gap.",
    ]
    for task, t in choice["tasks"].items():
        L += [
            "",
            f"**{task}**: chance {t['chance']:.3f}, scored by `{t['scorer']}` (the scorer the metrics use).",
            "",
            "| condition | accuracy | 95% CI | answers | flags |",
            "|---|---|---|---|---|",
        ]
        for cond, row in t["conditions"].items():
            answers = " · ".join(f"{a} {s:.0%}" for a, s in row["shares"].items())
            flags = ", ".join("**constant**" if f == "constant" else "**chance**" for f in row["flags"])
            lo, hi = row["ci"]
            L.append(f"| {cond} | {row['accuracy']:.3f} | {lo:.3f} … {hi:.3f} | {answers} | {flags or '—'} |")
    return L
