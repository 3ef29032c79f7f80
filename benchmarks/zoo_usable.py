"""Is every held-out task usable on the embedded zoo? And how fast are training and evaluation?

    python benchmarks/zoo_usable.py [--out runs/zoo-usable] [--tasks a,b] [--n 300]
    python benchmarks/zoo_usable.py --tasks sci_context --epochs 2 --target tiny-llama-l
    ATEN_CPU_CAPABILITY=default python benchmarks/zoo_usable.py --out runs/zoo-usable-default

`--epochs` overrides the recipe's epochs (a shorter training), `--target` trains the oracle on
another zoo base; `ATEN_CPU_CAPABILITY=default` (torch's portable kernels) simulates another CPU.
Tasks may be anchors too: the table is then how far the zoo learns them at all.

For each held-out task: train the Y oracle (on tiny-llama-y) and the X adapter (on tiny-qwen2-x)
with the default recipe, then score base Y, Y + oracle and X + X adapter on the same n eval items
with the task's scorers. Adapters, per-item records (JSONL) and a summary (JSON + Markdown table)
go to --out; finished pieces are reused when the script is run again. Also reports LoRA training
steps/s and evaluation items/s (generation and scoring separately), measured on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from loraport.evaluate import EvalResult, evaluate
from loraport.tasks import get_task, list_tasks
from loraport.train import LOG_NAME, Recipe, train_lora
from loraport.zoo import DEFAULT_SOURCE, DEFAULT_TARGET, build, build_record

BAR = 0.10


def adapter(base: str, task: str, out: Path, recipe: Recipe) -> dict:
    if not (out / LOG_NAME).is_file():
        train_lora(base, task, recipe, out=out, force=out.exists())
    log = json.loads((out / LOG_NAME).read_text())
    return {"seconds": log["seconds"], "steps": log["steps"], "steps_per_second": log["steps_per_second"]}


def scored(base: str, task: str, out: Path, n: int, ad: Path | None) -> EvalResult:
    if out.is_file():
        return EvalResult.load(out)
    res = evaluate(base, task, adapter=ad, n=n)
    res.save(out)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/zoo-usable")
    ap.add_argument("--tasks", default=",".join(list_tasks(role="heldout")))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=None, help="recipe epochs (default: the recipe's)")
    ap.add_argument("--target", default=DEFAULT_TARGET, help="zoo base for base Y and the oracle")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
    target = args.target
    zoo = {}
    for name in (DEFAULT_SOURCE, target):
        build(name)
        rec = build_record(name)
        zoo[name] = {
            "seconds": rec["seconds"],
            "parameters": rec["parameters"],
            "final_loss": rec["final_loss"],
        }
    rows, timing = [], {"train": [], "generate": [], "score": []}
    for task in args.tasks.split(","):
        t = get_task(task)
        tdir = out / task
        tr_y = adapter(target, task, tdir / "y-oracle", recipe)
        tr_x = adapter(DEFAULT_SOURCE, task, tdir / "x-adapter", recipe)
        timing["train"] += [(target, tr_y), (DEFAULT_SOURCE, tr_x)]
        res = {
            "base_y": scored(target, task, tdir / "base_y.jsonl", args.n, None),
            "oracle_y": scored(target, task, tdir / "oracle_y.jsonl", args.n, tdir / "y-oracle"),
            "x_adapter": scored(DEFAULT_SOURCE, task, tdir / "x_adapter.jsonl", args.n, tdir / "x-adapter"),
        }
        for r in res.values():
            sec = r.provenance.get("seconds", {})
            n = len({rec.id for rec in r.records})
            if "generate" in sec:
                timing["generate"].append((n, sec["generate"]))
            for s in r.scorers():
                if s in sec:
                    timing["score"].append((s, n, sec[s]))
        items = t.items("eval", args.n)
        # a model that picks a choice at random scores this much (0 for free-form answers)
        chance = sum(1 / len(it.choices) for it in items) / len(items) if items[0].choices else 0.0
        for scorer in t.scorers:
            acc = {k: r.accuracy(scorer) for k, r in res.items()}
            n = res["base_y"].summary()[scorer]["n"]
            invalid = {k: r.summary()[scorer]["invalid"] for k, r in res.items()}
            gap = acc["oracle_y"] - acc["base_y"]
            rows.append(
                {
                    "task": task,
                    "domain": t.domain,
                    "scorer": scorer,
                    "primary": scorer == t.scorer,
                    "n": n,
                    **acc,
                    "oracle_minus_base": gap,
                    "chance": chance,
                    "usable": gap >= BAR,
                    "invalid": invalid,
                }
            )
        print(json.dumps(rows[-len(t.scorers)]), flush=True)
    gen_items = sum(n for n, _ in timing["generate"])
    gen_s = sum(s for _, s in timing["generate"])
    per_scorer = {}
    for s, n, sec in timing["score"]:
        a = per_scorer.setdefault(s, [0, 0.0])
        a[0] += n
        a[1] += sec
    speed = {
        "train_steps_per_second": {
            b: round(
                sum(x["steps"] for bb, x in timing["train"] if bb == b)
                / sum(x["seconds"] for bb, x in timing["train"] if bb == b),
                2,
            )
            for b in (target, DEFAULT_SOURCE)
        },
        "adapter_seconds_mean": {
            b: round(
                sum(x["seconds"] for bb, x in timing["train"] if bb == b)
                / max(1, sum(1 for bb, _ in timing["train"] if bb == b)),
                1,
            )
            for b in (target, DEFAULT_SOURCE)
        },
        "generate_items_per_second": round(gen_items / gen_s, 1) if gen_s else None,
        "score_items_per_second": {
            s: round(n / sec, 1) if sec else None for s, (n, sec) in per_scorer.items()
        },
    }
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "recipe": recipe.model_dump(mode="json"),
        "zoo": zoo,
        "rows": rows,
        "speed": speed,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        "| domain | task | scorer | n | chance | base Y | Y oracle | oracle − base (pts) | X + X adapter | usable (≥ 10 pts) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['domain']} | {r['task']} | {r['scorer']}{'' if r['primary'] else ' (alt)'} | {r['n']} | "
            f"{r['chance']:.3f} | "
            f"{r['base_y']:.3f} | {r['oracle_y']:.3f} | {100 * r['oracle_minus_base']:+.1f} | "
            f"{r['x_adapter']:.3f} | {'yes' if r['usable'] else 'no'} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(speed, indent=1))


if __name__ == "__main__":
    main()
