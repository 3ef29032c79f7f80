"""Fit time, port time, read-once time, map size, peak RSS and port error per method, at 3B shapes.

Synthetic anchors with the exact module shapes of Qwen2.5-3B-Instruct (X) and Llama-3.2-3B-Instruct
(Y): LoRA r=16 on all 7 projections, N=24 pairs plus one held-out input, float32 safetensors as PEFT
writes them (≈120 MB per X adapter, ≈97 MB per Y adapter, 5.3 GB in all). Only configs are needed;
no model weights are read. Per method, each step runs in a fresh subprocess so its peak RSS is its
own: `fit` (fit_map + save), `port` (FittedMap.load + apply_map: the whole port, the map's content
hash included), and `check` (the port's worst relative Frobenius error of ΔW per module against
the float64 port from the original anchors, port.reference). `read` is a plain sequential read of
the map folder's files: warm (page cache, as a port right after a fit or a previous port sees it)
and cold (after asking the kernel to drop the files' pages, where it lets us).

Each step's record goes to RESULTS.jsonl; the table is built from those records only.

    python benchmarks/port_speed.py                 # all methods, data in $TMPDIR (kept for reruns)
    python benchmarks/port_speed.py --methods mean global_ridge --no-check
    python benchmarks/port_speed.py --table results.jsonl   # rebuild the table from records
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

QWEN25_3B = dict(
    model_type="qwen2",
    hidden_size=2048,
    num_hidden_layers=36,
    num_attention_heads=16,
    num_key_value_heads=2,
    intermediate_size=11008,
    vocab_size=151936,
)
LLAMA32_3B = dict(
    model_type="llama",
    hidden_size=3072,
    num_hidden_layers=28,
    num_attention_heads=24,
    num_key_value_heads=8,
    intermediate_size=8192,
    vocab_size=128256,
    head_dim=128,
)
METHODS = [
    "mean",
    "global_ridge",
    "pertensor_ridge",
    "topk_global_ridge",
    "topk_pertensor_ridge",
    "procrustes",
    "pertensor_pca",
    "pertensor_mlp",
]
TARGETS = {"fit_s": 30.0, "port_s": 2.0, "port_over_read": 1.5, "rss_gb": 4.0, "error": 1e-3}


def _config(d: dict):
    from transformers import AutoConfig

    d = dict(d)
    return AutoConfig.for_model(d.pop("model_type"), **d)


def make_data(root: Path, n: int, rank: int) -> Path:
    from loraport.adapters.synthetic import synthetic_adapter

    spec_path = root / f"anchors_n{n}_r{rank}.yaml"
    if spec_path.exists():
        return spec_path
    cx, cy = _config(QWEN25_3B), _config(LLAMA32_3B)
    pairs = []
    for i in range(n + 1):
        task = f"task{i:02d}" if i < n else "heldout"
        for side, cfg, seed in (("x", cx, i), ("y", cy, 10_000 + i)):
            out = root / side / task
            if not out.exists():
                synthetic_adapter(cfg, out, rank=rank, alpha=2 * rank, seed=seed, task=task)
        if i < n:
            pairs.append({"task": task, "source": f"x/{task}", "target": f"y/{task}"})
    spec_path.write_text(
        yaml.safe_dump(
            {
                "source_base": "Qwen/Qwen2.5-3B-Instruct",
                "target_base": "meta-llama/Llama-3.2-3B-Instruct",
                "pairs": pairs,
            }
        )
    )
    return spec_path


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def read_once(folder: Path) -> float:
    """Seconds for a plain sequential read of every file in `folder` (what `cat` does)."""
    buf = bytearray(1 << 24)
    t0 = time.perf_counter()
    for f in sorted(folder.iterdir()):
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
    return time.perf_counter() - t0


def drop_cache(folder: Path) -> bool:
    """Ask the kernel to forget the folder's cached pages; False where it will not."""
    try:
        for f in folder.iterdir():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        return True
    except (OSError, AttributeError):
        return False


def step_fit(spec_path: Path, method: str, maps: Path) -> dict:
    from loraport.port import fit_map, load_anchors

    opts = {"k": 8} if method.startswith("topk") else {}
    spec = load_anchors(spec_path)
    cx, cy = _config(QWEN25_3B), _config(LLAMA32_3B)
    t0, c0 = time.perf_counter(), time.process_time()
    fm = fit_map(spec, method, cx, cy, options=opts)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    fm.save(maps / method, force=True)
    save_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (maps / method).iterdir())
    return {
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu,
        "save_s": save_s,
        "map_bytes": size,
        "fit_rss_gb": _rss_gb(),
        "load_avg": os.getloadavg()[0],
    }


def step_port(spec_path: Path, method: str, maps: Path) -> dict:
    from loraport.port import FittedMap, apply_map

    out = maps / f"ported_{method}"
    t0, c0 = time.perf_counter(), time.process_time()
    fm = FittedMap.load(maps / method)
    verified = fm.tensors.verified
    apply_map(fm, spec_path.parent / "x" / "heldout", out, force=True)
    return {
        "port_s": time.perf_counter() - t0,
        "port_cpu_s": time.process_time() - c0,
        "hashed": not verified,
        "port_rss_gb": _rss_gb(),
        "load_avg": os.getloadavg()[0],
    }


def step_check(spec_path: Path, method: str, maps: Path) -> dict:
    from loraport.adapters import load_adapter
    from loraport.port import FittedMap, load_anchors
    from loraport.port.reference import reference_port, rel_error

    t0 = time.perf_counter()
    fm = FittedMap.load(maps / method)
    n = len(fm.layer_map)
    layers = sorted({0, n // 3, 2 * n // 3, n - 1})  # the float64 reference is slow: 4 spread layers
    ref = reference_port(fm, load_anchors(spec_path), spec_path.parent / "x" / "heldout", layers)
    got = load_adapter(maps / f"ported_{method}")
    errors = {m: rel_error(got.lowrank(m), ref[m]) for m in ref}
    worst = max(errors, key=errors.get)
    return {
        "max_rel_error": errors[worst],
        "worst_module": worst,
        "checked_layers": layers,
        "checked_modules": len(errors),
        "check_s": time.perf_counter() - t0,
    }


STEPS = {"fit": step_fit, "port": step_port, "check": step_check}


def run_step(step: str, spec: Path, method: str, maps: Path, cache: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--step",
        step,
        "--spec",
        str(spec),
        "--methods",
        method,
        "--maps",
        str(maps),
    ]
    res = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "LORAPORT_CACHE": str(cache)}
    )
    if res.returncode != 0:
        return {
            "error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        }
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(spec: Path, method: str, maps: Path, check: bool, keep: bool) -> dict:
    cache = maps / "cache"  # where the fit notes that its map passed its hashes
    rec: dict = {"method": method, **run_step("fit", spec, method, maps, cache)}
    folder = maps / method
    if "error" in rec:
        return rec
    read_once(folder)  # warm the page cache (the fit just wrote it; this makes sure)
    rec["read_warm_s"] = min(read_once(folder) for _ in range(2))
    ports = [run_step("port", spec, method, maps, cache) for _ in range(2)]
    rec.update(min(ports, key=lambda r: r.get("port_s", float("inf"))))
    fresh = maps / f"cache-{method}"  # a cache that has never seen this map: the port hashes it
    hashed = run_step("port", spec, method, maps, fresh)
    shutil.rmtree(fresh, ignore_errors=True)
    rec["port_hashed_s"], rec["port_hashed_cpu_s"] = hashed.get("port_s"), hashed.get("port_cpu_s")
    rec["cold_dropped"] = drop_cache(folder)
    if rec["cold_dropped"]:
        rec["read_cold_s"] = read_once(folder)
        drop_cache(folder)
        rec["port_cold_s"] = run_step("port", spec, method, maps, cache).get("port_s")
    if check:
        rec.update(run_step("check", spec, method, maps, cache))
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return rec


def table(records: list[dict], env: str) -> str:
    t = TARGETS
    lines = [
        env,
        "",
        "| method | fit (s) | fit CPU (s) | save (s) | port (s) | port CPU (s) | port, hashing the map (s) "
        "| read once (s) | port / read | port cold (s) | read cold (s) | map (GB) | peak RSS fit / port (GB) "
        "| max rel. error | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if "port_s" not in r:
            lines.append(f"| {r['method']} | failed: {r.get('error')} |")
            continue
        ratio = r["port_s"] / r["read_warm_s"]
        err = r.get("max_rel_error")
        missed = [
            name
            for name, ok in (
                ("fit", r["fit_s"] <= t["fit_s"]),
                ("port 2 s", r["port_s"] <= t["port_s"]),
                ("port/read", ratio <= t["port_over_read"]),
                ("RSS", max(r["fit_rss_gb"], r["port_rss_gb"]) <= t["rss_gb"]),
                ("error", err is None or err <= t["error"]),
            )
            if not ok
        ]
        cold = f"{r['port_cold_s']:.2f} | {r['read_cold_s']:.2f}" if r.get("port_cold_s") else "– | –"
        lines.append(
            f"| {r['method']} | {r['fit_s']:.1f} | {r['fit_cpu_s']:.1f} | {r['save_s']:.1f} | {r['port_s']:.2f} | "
            f"{r['port_cpu_s']:.2f} | {r['port_hashed_s'] or float('nan'):.2f} | {r['read_warm_s']:.2f} | "
            f"{ratio:.1f} | {cold} | {r['map_bytes'] / 1e9:.2f} | {r['fit_rss_gb']:.2f} / {r['port_rss_gb']:.2f} | "
            f"{'–' if err is None else f'{err:.1e}'} | {'all met' if not missed else 'missed: ' + ', '.join(missed)} |"
        )
    loads = [r[k] for r in records for k in ("load_avg",) if k in r]
    lines += [
        "",
        f"targets: fit ≤ {t['fit_s']:.0f} s, port ≤ {t['port_s']:.0f} s warm and ≤ {t['port_over_read']}× the "
        f"warm read of the map, peak RSS ≤ {t['rss_gb']:.0f} GB, error ≤ {t['error']:.0e} (ΔW per module, "
        "relative Frobenius, vs the float64 port from the anchors). Times are wall-clock; CPU is the "
        f"process's CPU seconds over all threads. 1-min load average during the steps: "
        f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} (other work on the same 2 cores).",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--methods", nargs="*", default=METHODS)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "loraport-bench")
    ap.add_argument("--no-check", action="store_true", help="skip the float64 reference port (slow)")
    ap.add_argument("--keep-maps", action="store_true", help="keep each method's map (2-3 GB each)")
    ap.add_argument("--results", type=Path, help="append each method's record here (JSON lines)")
    ap.add_argument("--table", type=Path, help="only print the table of a results file")
    ap.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--maps", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        import torch

        torch.set_num_threads(1)  # fit and port fix this themselves; the reference check too
        print(json.dumps(STEPS[args.step](args.spec, args.methods[0], args.maps)))
        return
    import torch

    env = (
        f"port_speed: N={args.n}, r={args.rank}, Qwen2.5-3B → Llama-3.2-3B shapes, 7 projections; "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {platform.machine()}"
    )
    if args.table:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()], env))
        return
    args.data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec = make_data(args.data, args.n, args.rank)
    print(f"data: {spec} ({time.perf_counter() - t0:.0f}s to build or find)", file=sys.stderr)
    maps = args.data / "maps"
    maps.mkdir(exist_ok=True)
    records = []
    for m in args.methods:
        rec = {**measure(spec, m, maps, not args.no_check, args.keep_maps), "n": args.n, "rank": args.rank}
        records.append(rec)
        print(f"{m}: {json.dumps(rec)}", file=sys.stderr)
        if args.results:
            with open(args.results, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    print("\n" + table(records, env))


if __name__ == "__main__":
    main()
