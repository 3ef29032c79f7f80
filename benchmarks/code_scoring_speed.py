"""How many generated programs per second `score_code_batch` scores on this machine's cores.

    python benchmarks/code_scoring_speed.py [--n 200] [--workers N] [--baseline OLD/src] [--repeat R]

Builds N small MBPP-style (prediction, item) pairs, a mix of correct solutions, wrong answers,
exceptions and syntax errors (no timeouts: those would only measure the timeout), runs the programs
that `score_code_batch` would run, first with a sandbox start per program and then in batches
(`loraport.sandbox.batch`), and prints a Markdown table. A sequential run over a sample gives the
per-program latency.

--baseline OLD/src measures another checkout's sandbox the same way first (in a subprocess that
imports loraport from OLD/src), then this one, back to back, R times alternating, and prints both
with the change in programs/s; e.g. before and after the sandbox hardening of issue 15:

    git archive af95261 src | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python benchmarks/code_scoring_speed.py --n 300 --baseline /tmp/before/src --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
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


def measure(n: int, workers: int, sample: int) -> dict:
    """Time the sandbox runs of `score_code_batch` for n programs; a JSON-able summary."""
    iso = isolation()  # probes namespaces once, outside the timed region
    predictions, items, kinds = make_pairs(n)
    # The sandbox runs of `score_code_batch`, timed without its verdict memo (which would turn a
    # repeated program into a lookup): the same programs with a sandbox each, then in batches.
    sources = [_full_source(extract_program(p, it), it) for p, it in zip(predictions, items, strict=True)]
    expected = [k == "correct" for k in kinds]
    m = min(sample, n)
    rows, mismatches, outcomes = [], 0, Counter()
    for label, batch in (("a sandbox per program", False), ("batches", True)):
        for run, count, w in (("parallel", n, workers), ("sequential", m, 1)):
            start = time.perf_counter()
            results = run_many(sources[:count], workers=w, batch=batch, timeout_s=10.0)
            wall = time.perf_counter() - start
            rows.append([label, run, count, w, wall])
            verdicts = [verdict_from_result("", r) for r in results]
            mismatches += sum(v.correct != e for v, e in zip(verdicts, expected, strict=False))
            if run == "parallel" and batch:
                outcomes = Counter(r.outcome for r in results)
    hardening = ", ".join(
        f"{key}={iso[key]}" for key in ("seccomp", "cgroup", "work_tmpfs", "hidden") if key in iso
    )
    return {
        "rows": rows,
        "mismatches": mismatches,
        "outcomes": dict(outcomes),
        "isolation": (
            f"uid switch={iso['uid_switch']}, namespaces={','.join(iso['namespaces']) or 'none'}, "
            f"read-only fs={iso['readonly_fs']}, batches={batchable()}"
        ),
        "hardening": hardening or "none (before issue 15)",
    }


def _baseline(src: str, args: argparse.Namespace, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--json", "--n", str(args.n), "--workers", str(workers)]
    cmd += ["--sequential-sample", str(args.sequential_sample)]
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _best(runs: list[dict]) -> dict:
    """Per row, the fastest of the repeats (the least disturbed by other load)."""
    best = runs[0]
    for other in runs[1:]:
        for row, alt in zip(best["rows"], other["rows"], strict=True):
            row[4] = min(row[4], alt[4])
    best["mismatches"] = sum(r["mismatches"] for r in runs)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="programs to score (default 200)")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: cores)")
    parser.add_argument("--sequential-sample", type=int, default=20, help="programs in the 1-worker run")
    parser.add_argument("--baseline", default=None, help="another checkout's src/ to measure first")
    parser.add_argument("--repeat", type=int, default=1, help="alternating repeats; the best is shown")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    workers = min(args.workers or cores, cores)
    if args.json:
        print(json.dumps(measure(args.n, workers, args.sequential_sample)))
        return 0
    before, after = [], []
    for _ in range(max(1, args.repeat)):
        if args.baseline:
            before.append(_baseline(args.baseline, args, workers))
        after.append(measure(args.n, workers, args.sequential_sample))
    now = _best(after)
    old = _best(before) if before else None

    print(f"### Code scoring speed ({platform.node()}, Python {platform.python_version()}, {cores} cores)\n")
    print(f"Isolation: {now['isolation']}\n\nHardening: {now['hardening']}\n")
    if old is not None:
        print(f"Baseline ({args.baseline}): {old['isolation']}; hardening: {old['hardening']}\n")
        print("| sandbox | run | programs | workers | before (programs/s) | after (programs/s) | change |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for (label, run, count, w, wall), prev in zip(now["rows"], old["rows"], strict=True):
            a, b = prev[2] / prev[4], count / wall
            print(f"| {label} | {run} | {count} | {w} | {a:.1f} | {b:.1f} | {100 * (b - a) / a:+.0f}% |")
    else:
        print("| sandbox | run | programs | workers | wall (s) | programs/s | ms/program |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for label, run, count, w, wall in now["rows"]:
            print(
                f"| {label} | {run} | {count} | {w} | {wall:.2f} | {count / wall:.1f} | {1000 * wall / count:.1f} |"
            )
    print()
    mismatches = now["mismatches"] + (old["mismatches"] if old else 0)
    print(
        "Outcomes: "
        + ", ".join(f"{k} {c}" for k, c in sorted(now["outcomes"].items()))
        + f"; verdicts differing from the expected label (all runs): {mismatches}"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
