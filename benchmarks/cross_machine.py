"""Do the demo's numbers travel? Run one study under two CPU kernel paths and compare.

torch picks its CPU kernels by the processor's instruction set (AVX-512, AVX2, or none); float
results differ between them as they differ between machines. Setting ATEN_CPU_CAPABILITY=default
forces the portable kernels, which simulates another machine on this one. This script runs the
study twice, in fresh processes (the variable is read when torch loads), each with its own study
cache and its own $LORAPORT_CACHE (align's fitted alignments live there), so nothing is shared, then reports per method whether each run's aggregate gap_recovered lies
inside the other's 95% CI, and per held-out task whether it is robustly usable in both.

    python benchmarks/cross_machine.py                          # studies/starter.yaml, native vs default
    python benchmarks/cross_machine.py --study studies/demo.yaml --out runs/cross
    python benchmarks/cross_machine.py --compare runs/cross/native runs/cross/default   # no runs

Both runs are resumable (re-running the command continues where they stopped). Writes
OUT/cross_machine.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from loraport.bench.compare_runs import compare_runs, on_shared_tasks, render
from loraport.bench.store import Store

PATHS = {"native": None, "default": "default"}  # ATEN_CPU_CAPABILITY per kernel path (None: unset)


def _env(capability: str | None, cache_root: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if cache_root is not None:
        env["LORAPORT_CACHE"] = str(cache_root)
    if capability is not None:
        env["ATEN_CPU_CAPABILITY"] = capability
    return env


def capability(cap: str | None) -> str:
    """The kernel path torch reports in a fresh process with this setting."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run(
        [sys.executable, "-c", code], env=_env(cap), capture_output=True, text=True, check=True
    ).stdout.strip()


def run(study: str, out: Path, cap: str | None) -> float:
    """Run the study into `out` (its own cache inside) under the kernel path; seconds taken."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-c", "from loraport.cli.main import app; app()", "bench", study]
    cmd += ["--out", str(out), "--cache", str(out / "cache")]
    subprocess.run(cmd, env=_env(cap, out / "loraport_cache"), check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="studies/starter.yaml")
    ap.add_argument("--out", default="runs/cross_machine")
    ap.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two finished runs only")
    args = ap.parse_args()
    out = Path(args.out)
    lines: list[str] = []
    if args.compare:
        dirs = [Path(d) for d in args.compare]
        names = [d.name for d in dirs]
    else:
        dirs, names = [], []
        for name, cap in PATHS.items():
            used = capability(cap)
            print(f"{name}: torch kernel path {used}", flush=True)
            seconds = run(args.study, out / name, cap)
            lines.append(
                f"- {name}: ATEN_CPU_CAPABILITY={cap or '(unset)'}, torch reports `{used}`, {seconds:.0f} s"
            )
            dirs.append(out / name)
            names.append(f"{name} ({used})")
    a, b = (json.loads((d / "summary.json").read_text()) for d in dirs)
    records = [Store(d).load_records() for d in dirs]
    if all(records):  # compare the methods on the tasks both runs count
        study = json.loads((dirs[0] / "run.json").read_text())["study"]
        a, b = on_shared_tasks(a, b, *records, study)
    cmp = compare_runs(a, b)
    text = "\n".join([*render(cmp, *names), "", *lines]) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_machine.md").write_text(text)
    (out / "cross_machine.json").write_text(json.dumps(cmp, indent=1) + "\n")
    print(text)
    return 0 if cmp["all_reproduce"] and cmp["all_tasks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
