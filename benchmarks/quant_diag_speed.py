"""Time to quantize and diagnose one 3B-shaped module set (Llama-3.2-3B widths), no model needed.

The set: q_proj (3072 × 3072) and up_proj (8192 × 3072) weights, Gaussian (std 0.02), a rank-16
adapter on each, and 512 calibration input rows of width 3072 (correlated, with 8 salient channels,
as LLM activations have). Every scheme of `loraport.quant.STUDY_SCHEMES` quantizes both weights
(fake-quant, float32); the diagnostics run on the adapters: ΔW spectrum stats, depth profile,
subspace overlap and cosine between two adapters, a 3-D PCA of 8 adapters, and linear CKA between
one layer's states before and after the adapter (1024 positions × 3072).

    python benchmarks/quant_diag_speed.py                  # 2 threads, prints a Markdown table
    python benchmarks/quant_diag_speed.py --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from loraport.adapters import LowRank
from loraport.diagnostics import adapter_overlap, adapter_pca, depth_profile, module_spectra
from loraport.port.align import cka_matrix
from loraport.quant import STUDY_SCHEMES, get_quantizer, output_error

SHAPES = {"model.layers.0.self_attn.q_proj": (3072, 3072), "model.layers.0.mlp.up_proj": (8192, 3072)}
RANK = 16
ROWS = 512
POSITIONS = 1024


def timed(fn):
    """(result, wall seconds, CPU seconds of this process): on a shared machine the CPU time is the
    steadier figure, since wall time grows with other processes' load."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def module_set(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weights = {n: torch.randn(o, i, generator=g) * 0.02 for n, (o, i) in SHAPES.items()}
    x = torch.randn(ROWS, 64, generator=g) @ torch.randn(64, 3072, generator=g) / 8
    x += 0.3 * torch.randn(ROWS, 3072, generator=g)
    x[:, :8] *= 20
    return weights, x


def adapter(seed: int) -> dict[str, LowRank]:
    g = torch.Generator().manual_seed(1000 + seed)
    decay = torch.tensor([0.8**k for k in range(RANK)])
    return {
        n: LowRank(
            torch.randn(o, RANK, generator=g) * 0.01 * decay, torch.randn(RANK, i, generator=g) / i**0.5
        )
        for n, (o, i) in SHAPES.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights, x = module_set()
    rows = []
    for scheme in STUDY_SCHEMES:
        quant = get_quantizer(scheme)
        total, cpu, errs = 0.0, 0.0, []
        for w in weights.values():
            w_hat, sec, c = timed(lambda w=w, q=quant: q.quantize(w, x if q.calibrated else None))
            total, cpu = total + sec, cpu + c
            ref = output_error(torch.zeros_like(w), w, x)
            errs.append((output_error(w_hat, w, x) / ref) ** 0.5)
        rows.append({"what": f"quantize {scheme}", "seconds": total, "cpu": cpu, "output_error": max(errs)})
        print(
            f"{scheme:18s} {total:7.2f} s  cpu {cpu:7.2f} s  rel. output error ≤ {max(errs):.4f}", flush=True
        )

    ads = [adapter(k) for k in range(8)]
    diag = {
        "ΔW spectrum stats (2 modules)": lambda: module_spectra(ads[0]),
        "depth profile": lambda: depth_profile(ads[0]),
        "overlap + cosine of 2 adapters": lambda: adapter_overlap(ads[0], ads[1], k=8),
        "3-D PCA of 8 adapters": lambda: adapter_pca(ads, dims=3),
    }
    g = torch.Generator().manual_seed(5)
    h_in = torch.randn(POSITIONS, 3072, generator=g)
    w_q = weights["model.layers.0.self_attn.q_proj"]
    lr = ads[0]["model.layers.0.self_attn.q_proj"]
    diag["CKA, one layer (1024 × 3072)"] = lambda: cka_matrix([h_in @ w_q.T], [h_in @ (w_q + lr.dense()).T])
    for what, fn in diag.items():
        _, sec, cpu = timed(fn)
        rows.append({"what": what, "seconds": sec, "cpu": cpu})
        print(f"{what:34s} {sec:7.3f} s  cpu {cpu:7.3f} s", flush=True)

    env = {
        "threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    print(f"\nload average {env['load_average']}")
    print("\n| step | wall s | CPU s | rel. output error |\n|---|---|---|---|")
    for r in rows:
        err = f"{r['output_error']:.4f}" if "output_error" in r else ""
        print(f"| {r['what']} | {r['seconds']:.2f} | {r['cpu']:.2f} | {err} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"env": env, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
