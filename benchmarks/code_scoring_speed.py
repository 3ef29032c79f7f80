"""How many generated programs per second `score_code_batch` scores on this machine's cores.

    python benchmarks/code_scoring_speed.py [--n 200] [--workers N]

Builds N small MBPP-style (prediction, item) pairs, a mix of correct solutions, wrong answers,
exceptions and syntax errors (no timeouts: those would only measure the timeout), runs the programs
that `score_code_batch` would run, first with a sandbox start per program and then in batches
(`loraport.sandbox.batch`), and prints a Markdown table. A sequential run over a sample gives the
per-program latency.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter

from loraport.sandbox import batchable, isolation, run_many
from loraport.scorers.code import _full_source, extract_program, verdict_from_result
from loraport.tasks.item import Item

KINDS = {
    "correct": "```python\ndef square(x):\n    return x * x\n```",
    "wrong": "```python\ndef square(x):\n    return x + x\n```",
    "raises": "```python\ndef square(x):\n    return undefined_name * x\n```",
    "syntax": "```python\ndef square(x)\n    return x * x\n```",
}
MIX = ["correct", "correct", "wrong", "raises", "correct", "syntax", "wrong", "correct"]


def make_pairs(n: int) -> tuple[list[str], list[Item], list[str]]:
    predictions, items, kinds = [], [], []
    for i in range(n):
        kind = MIX[i % len(MIX)]
        item = Item(
            id=f"bench-{i}",
            prompt="Write square(x).",
            answer="",
            scorer="code_exec",
            tests=f"assert square({i}) == {i * i}\nassert square(-3) == 9\n",
            entry_point="square",
        )
        predictions.append(KINDS[kind])
        items.append(item)
        kinds.append(kind)
    return predictions, items, kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="programs to score (default 200)")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: cores)")
    parser.add_argument("--sequential-sample", type=int, default=20, help="programs in the 1-worker run")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    workers = min(args.workers or cores, cores)
    iso = isolation()  # probes namespaces once, outside the timed region
    predictions, items, kinds = make_pairs(args.n)

    # The sandbox runs of `score_code_batch`, timed without its verdict memo (which would turn a
    # repeated program into a lookup): the same programs with a sandbox each, then in batches.
    sources = [_full_source(extract_program(p, it), it) for p, it in zip(predictions, items, strict=True)]
    expected = [k == "correct" for k in kinds]
    m = min(args.sequential_sample, args.n)
    rows, mismatches, outcomes = [], 0, Counter()
    for label, batch in (("a sandbox per program", False), ("batches", True)):
        for run, count, w in (("parallel", args.n, workers), ("sequential", m, 1)):
            start = time.perf_counter()
            results = run_many(sources[:count], workers=w, batch=batch, timeout_s=10.0)
            wall = time.perf_counter() - start
            rows.append((label, run, count, w, wall))
            verdicts = [verdict_from_result("", r) for r in results]
            mismatches += sum(v.correct != e for v, e in zip(verdicts, expected, strict=False))
            if run == "parallel" and batch:
                outcomes = Counter(r.outcome for r in results)

    print(f"### Code scoring speed ({platform.node()}, Python {platform.python_version()}, {cores} cores)\n")
    print(
        f"Isolation: uid switch={iso['uid_switch']}, namespaces={','.join(iso['namespaces']) or 'none'}, "
        f"read-only fs={iso['readonly_fs']}, batches={batchable()}\n"
    )
    print("| sandbox | run | programs | workers | wall (s) | programs/s | ms/program |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, run, count, w, wall in rows:
        print(
            f"| {label} | {run} | {count} | {w} | {wall:.2f} | {count / wall:.1f} | {1000 * wall / count:.1f} |"
        )
    print()
    print(
        "Outcomes: "
        + ", ".join(f"{k} {c}" for k, c in sorted(outcomes.items()))
        + f"; verdicts differing from the expected label (all runs): {mismatches}"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
