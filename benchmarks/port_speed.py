"""Wall time and peak RSS of `fit` and one `port` per method, at real 3B module shapes.

Synthetic anchors with the exact module shapes of Qwen2.5-3B-Instruct (X) and Llama-3.2-3B-Instruct
(Y): LoRA r=16 on all 7 projections, N=24 pairs plus one held-out input, float32 safetensors as PEFT
writes them (≈120 MB per X adapter, ≈97 MB per Y adapter, 5.3 GB in all). Only configs are needed;
no model weights are read. Each method runs in a fresh subprocess so peak RSS is its own.

    python benchmarks/port_speed.py                 # all methods, data in $TMPDIR (kept for reruns)
    python benchmarks/port_speed.py --methods mean global_ridge --n 24
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

QWEN25_3B = dict(model_type="qwen2", hidden_size=2048, num_hidden_layers=36, num_attention_heads=16,
                 num_key_value_heads=2, intermediate_size=11008, vocab_size=151936)
LLAMA32_3B = dict(model_type="llama", hidden_size=3072, num_hidden_layers=28, num_attention_heads=24,
                  num_key_value_heads=8, intermediate_size=8192, vocab_size=128256, head_dim=128)
METHODS = ["mean", "global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge",
           "procrustes", "pertensor_pca", "pertensor_mlp"]


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
    spec_path.write_text(yaml.safe_dump({"source_base": "Qwen/Qwen2.5-3B-Instruct",
                                         "target_base": "meta-llama/Llama-3.2-3B-Instruct", "pairs": pairs}))
    return spec_path


def worker(spec_path: Path, method: str, out_dir: Path) -> dict:
    from loraport.port import apply_map, fit_map, load_anchors

    opts = {"k": 8} if method.startswith("topk") else {}
    spec = load_anchors(spec_path)
    t0 = time.perf_counter()
    fm = fit_map(spec, method, _config(QWEN25_3B), _config(LLAMA32_3B), options=opts)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    apply_map(fm, spec_path.parent / "x" / "heldout", out_dir / f"ported_{method}", force=True,
              verify_anchors=False)
    port_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    apply_map(fm, spec_path.parent / "x" / "heldout", out_dir / f"ported_{method}", force=True)
    port_verified_s = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"method": method, "fit_s": fit_s, "port_s": port_s, "port_verified_s": port_verified_s,
            "peak_rss_gb": rss_gb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--methods", nargs="*", default=METHODS)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "loraport-bench")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.methods[0], args.data)))
        return
    t0 = time.perf_counter()
    spec = make_data(args.data, args.n, args.rank)
    print(f"data: {spec} ({time.perf_counter() - t0:.0f}s to build or find)", file=sys.stderr)
    rows = []
    for m in args.methods:
        res = subprocess.run([sys.executable, __file__, "--worker", str(spec), "--methods", m, "--data", str(args.data)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"{m}: {rows[-1]}", file=sys.stderr)
    import torch

    print(f"\nport_speed: N={args.n}, r={args.rank}, Qwen2.5-3B → Llama-3.2-3B shapes, 7 projections; "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {platform.machine()}\n")
    print("| method | fit (s) | port (s) | port + anchor SHA-256 check (s) | peak RSS (GB) | targets met |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        ok = r["fit_s"] <= 60 and r["port_s"] <= 2 and r["peak_rss_gb"] <= 6
        print(f"| {r['method']} | {r['fit_s']:.1f} | {r['port_s']:.2f} | {r['port_verified_s']:.2f} | "
              f"{r['peak_rss_gb']:.2f} | {'yes' if ok else 'no'} |")
    print("\ntargets: fit ≤ 60 s, port ≤ 2 s, peak RSS ≤ 6 GB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
