"""`loraport demo --synthetic`: a check of the porting machinery in about half a minute on 2 CPU
cores, apart from the task-accuracy studies (`loraport demo` runs studies/starter.yaml). It is a
weight-space and logit-level study on two tiny models built on the fly (no download):

- X: a Qwen2-style model (hidden 64, 4 layers, 4 query / 2 KV heads);
- Y: a Llama-style model (hidden 96, 3 layers, 6 heads, MHA) — different width, depth, head layout.
- Adapter pairs share a hidden per-task latent (see `latent_pair_family`), plus components private to
  each base that no map can predict, so the best possible port is known to be imperfect.

For each held-out task and method it ports the X adapter to Y and measures, against the Y oracle:
cosine of the flattened ΔWs, and the logit-level gap recovered,
1 − KL(oracle ‖ port) / KL(oracle ‖ base), of Y's next-token distributions on fixed random token
sequences, with the ported folder loaded through `peft.PeftModel`. Results (per task, per method,
per seed) are stored in summary.json and report.md under the run folder.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from loraport import __version__
from loraport.adapters import inner, load_adapter
from loraport.adapters.synthetic import latent_pair_family
from loraport.io import atomic_file
from loraport.models import load_config
from loraport.port import METHODS, apply_map, fit_map, load_anchors
from loraport.testing import build_tiny_model

X_SPEC = dict(hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=128)
Y_SPEC = dict(hidden_size=96, num_layers=3, num_heads=6, num_kv_heads=6, intermediate_size=160)
OPTS = {"topk_global_ridge": {"k": 4}, "topk_pertensor_ridge": {"k": 4}}


def _flat_cos(a, b) -> float:
    num = sum(float(inner(a.lowrank(m), b.lowrank(m))) for m in a.modules)
    na = sum(a.lowrank(m).norm_sq() for m in a.modules) ** 0.5
    nb = sum(b.lowrank(m).norm_sq() for m in b.modules) ** 0.5
    return num / max(na * nb, 1e-300)


class _Scorer:
    """Y's next-token log-probs with an adapter's ΔW added to the weights (W + ΔW is exactly what
    PEFT computes for LoRA without dropout; the tests check PEFT loading of ported folders)."""

    def __init__(self, model_dir: Path, ids: torch.Tensor) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.params = dict(self.model.named_parameters())
        self.ids = ids

    def __call__(self, adapter: Path | None) -> torch.Tensor:
        params = dict(self.params)
        if adapter is not None:
            ad = load_adapter(adapter)
            for mod in ad.modules:
                params[f"{mod}.weight"] = params[f"{mod}.weight"] + ad.delta(mod)
        with torch.no_grad():
            logits = torch.func.functional_call(self.model, params, (self.ids,)).logits
        return torch.log_softmax(logits.double(), -1)


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    return float((p_log.exp() * (p_log - q_log)).sum(-1).mean())


def run_demo(out: str | Path, *, n_anchors: int = 12, n_heldout: int = 4, seeds: tuple[int, ...] = (0, 1, 2),
             methods: list[str] | None = None, log=print) -> dict[str, Any]:
    out = Path(out)
    t_start = time.perf_counter()
    methods = methods or [m for m in METHODS.names() if m != "copy"]
    models = out / "models"
    x_dir = build_tiny_model("qwen2", models / "x-qwen2", seed=11, force=True, **X_SPEC)
    y_dir = build_tiny_model("llama", models / "y-llama", seed=22, force=True, **Y_SPEC)
    cx, cy = load_config(str(x_dir)), load_config(str(y_dir))
    ids = torch.randint(0, 256, (8, 24), generator=torch.Generator().manual_seed(0))
    logprobs = _Scorer(y_dir, ids)
    base_lp = logprobs(None)
    records = []
    for seed in seeds:
        anchors = [f"anchor{i:02d}" for i in range(n_anchors)]
        held = [f"held{i}" for i in range(n_heldout)]
        sroot = out / f"seed{seed}"
        latent_pair_family(cx, cy, sroot / "adapters", anchors + held, seed=seed,
                           source_base=str(x_dir), target_base=str(y_dir))
        spec_path = sroot / "anchors.yaml"
        spec_path.write_text(yaml.safe_dump({
            "source_base": str(x_dir), "target_base": str(y_dir),
            "pairs": [{"task": t, "source": f"adapters/x/{t}", "target": f"adapters/y/{t}"} for t in anchors]}))
        spec = load_anchors(spec_path)
        oracle_lp = {t: logprobs(sroot / "adapters" / "y" / t) for t in held}
        for method in methods:
            t0 = time.perf_counter()
            fm = fit_map(spec, method, cx, cy, options=OPTS.get(method, {}), seed=seed)
            for t in held:
                ported = apply_map(fm, sroot / "adapters" / "x" / t, sroot / "ported" / method / t, force=True)
                oracle = load_adapter(sroot / "adapters" / "y" / t)
                kl_base = _kl(oracle_lp[t], base_lp)
                kl_port = _kl(oracle_lp[t], logprobs(ported))
                records.append({"seed": seed, "method": method, "task": t,
                                "cos_to_oracle": _flat_cos(load_adapter(ported), oracle),
                                "kl_oracle_base": kl_base, "kl_oracle_port": kl_port,
                                "logit_gap_recovered": 1 - kl_port / kl_base})
            log(f"seed {seed} {method:22s} {time.perf_counter() - t0:5.2f}s")
    summary = summarize(records)
    summary["provenance"] = {
        "loraport_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "x_model": {"family": "qwen2", **X_SPEC, "seed": 11}, "y_model": {"family": "llama", **Y_SPEC, "seed": 22},
        "n_anchors": n_anchors, "n_heldout": n_heldout, "seeds": list(seeds), "latent_dim": 4, "private_dim": 2,
        "eval_tokens": list(ids.shape), "seconds": round(time.perf_counter() - t_start, 1),
    }
    with atomic_file(out / "records.jsonl") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    with atomic_file(out / "summary.json") as fh:
        fh.write(json.dumps(summary, indent=2) + "\n")
    with atomic_file(out / "report.md") as fh:
        fh.write(render(summary))
    return summary


def summarize(records: list[dict]) -> dict[str, Any]:
    """Per method: mean ± std over seeds of the per-seed average over held-out tasks."""
    out: dict[str, Any] = {"methods": {}}
    for m in dict.fromkeys(r["method"] for r in records):
        row = {}
        for metric in ("cos_to_oracle", "logit_gap_recovered"):
            per_seed = [statistics.fmean(r[metric] for r in records if r["method"] == m and r["seed"] == s)
                        for s in dict.fromkeys(r["seed"] for r in records)]
            row[metric] = {"mean": statistics.fmean(per_seed),
                           "std": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0, "n_seeds": len(per_seed),
                           "n_tasks": sum(1 for r in records if r["method"] == m and r["seed"] == records[0]["seed"])}
        out["methods"][m] = row
    return out


def render(summary: dict[str, Any]) -> str:
    p = summary["provenance"]
    lines = [
        "# loraport demo --synthetic: Qwen2-style → Llama-style tiny models, synthetic latent-sharing anchors",
        "",
        f"N={p['n_anchors']} anchors, {p['n_heldout']} held-out tasks, seeds {p['seeds']}; "
        f"loraport {p['loraport_version']}, torch {p['torch']}, {p['seconds']} s.",
        "This is a weight-space and logit-level check of the porting machinery, not a task-accuracy study "
        "(`loraport demo` runs one on the embedded zoo).",
        "",
        "| method | cos(ΔW_port, ΔW_oracle) | logit gap recovered |",
        "|---|---:|---:|",
    ]
    rows = sorted(summary["methods"].items(), key=lambda kv: -kv[1]["logit_gap_recovered"]["mean"])
    for m, row in rows:
        c, g = row["cos_to_oracle"], row["logit_gap_recovered"]
        lines.append(f"| {m} | {c['mean']:.3f} ± {c['std']:.3f} | {g['mean']:.3f} ± {g['std']:.3f} |")
    best = rows[0]
    lines += ["", f"Headline: best method {best[0]} recovers {best[1]['logit_gap_recovered']['mean']:.3f} of the "
              f"logit gap (mean ± std over {best[1]['logit_gap_recovered']['n_seeds']} seeds of the mean over "
              f"{best[1]['logit_gap_recovered']['n_tasks']} held-out tasks); `mean` recovers "
              f"{summary['methods'].get('mean', {}).get('logit_gap_recovered', {}).get('mean', float('nan')):.3f}.",
              "Logit gap recovered = 1 − KL(oracle‖port)/KL(oracle‖base) on Y's next-token distributions.", ""]
    return "\n".join(lines)
