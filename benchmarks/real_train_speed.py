"""LoRA training speed on the real checkpoints: loraport's trainer against a plain transformers + PEFT
loop, on the same examples, in the same run.

Three variants per base, each in a fresh subprocess (so peak RSS is its own), all at the study recipe
(LoRA r=16 on all 7 projections, batch 8, AdamW, each model's chat format (auto: its own template, raw for Gemma-3-270M), the task's training items):

  plain    model(**batch).loss: logits over the whole sequence and vocabulary, seeded random batches
  answer   loraport's answer-position loss (`loraport.train.loss.answer_loss`), the same batches,
           every row computed in full
  prefix   the same loss with the batch's shared prefix (a few-shot task's shots, a chat template's
           system turn) computed once, the same batches
  recipe   answer-position loss with the shared prefix + length bucketing (`Recipe(answer_logits=True,
           bucket=True)`): what `loraport train` does

Reported: optimiser steps/s, tokens/s (non-padding tokens, the figure the target is stated in), peak
RSS, and the largest difference between the plain and answer losses on the same batches (the same
loss, so it should be float noise). The first step of each variant is a warm-up and is not timed.

    python benchmarks/real_train_speed.py                       # both real bases, 12 timed steps
    python benchmarks/real_train_speed.py --bases gemma3-270m --steps 20 --json out.json
    python benchmarks/real_train_speed.py --device cuda --steps 20   # on a GPU: peak is GPU memory
    python benchmarks/real_train_speed.py --task code_cond_arith@2shot  # few-shot rows: the prefix counts
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

BASES = ["smollm2-135m-instruct", "gemma3-270m"]
VARIANTS = ["plain", "answer", "prefix", "recipe"]


def child(base: str, variant: str, task: str, steps: int, batch: int, threads: int, device: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from loraport.models import load_model
    from loraport.tasks import resolve_task
    from loraport.train.data import collate, encode_examples
    from loraport.train.lora import default_targets
    from loraport.train.loss import answer_loss, bucketed_order

    torch.set_num_threads(threads)
    model, tok, _ = load_model(base, device=device)
    items = resolve_task(task).items("train", (steps + 1) * batch, seed=0)
    examples = encode_examples(tok, items, 320, task)  # the real study's max_length
    torch.manual_seed(0)
    config = LoraConfig(
        r=16, lora_alpha=32, target_modules=list(default_targets(model.config)), task_type="CAUSAL_LM"
    )
    peft = get_peft_model(model, config)
    if variant == "recipe":
        order = bucketed_order([len(ids) for ids, _ in examples], batch, [0, 0])
    else:
        import numpy as np

        order = np.random.default_rng([0, 0]).permutation(len(examples))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    params = [p for p in peft.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.98))
    peft.train()
    losses, tokens, seconds = [], 0, 0.0
    cuda = device.startswith("cuda")
    for step in range(steps + 1):
        b = collate([examples[i] for i in order[step * batch : (step + 1) * batch]], pad)
        b = {k: v.to(device) for k, v in b.items()}
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if variant == "plain":
            loss = peft(**b).loss
        else:
            share = variant != "answer"
            loss = answer_loss(peft, b["input_ids"], b["attention_mask"], b["labels"], share_prefix=share)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if step > 0:  # the first step warms caches and allocators
            seconds += dt
            tokens += int(b["attention_mask"].sum())
    # on a GPU the figure that matters is the device's peak allocation, not the host's RSS
    rss = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "base": base,
        "variant": variant,
        "steps": steps,
        "batch": batch,
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_rss_mb": round(rss),
        "losses": [round(x, 5) for x in losses],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bases", nargs="+", default=BASES)
    ap.add_argument("--task", default="math_mul_add")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda when a GPU is there.")
    ap.add_argument("--json", default=None, help="Also write the rows here.")
    ap.add_argument("--child", nargs=2, metavar=("BASE", "VARIANT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child, a.task, a.steps, a.batch, a.threads, a.device)))
        return
    import torch

    rows = []
    for base in a.bases:
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--child", base, variant, "--task", a.task]
            cmd += ["--steps", str(a.steps), "--batch", str(a.batch), "--threads", str(a.threads)]
            cmd += ["--device", a.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f"{base} / {variant} failed:\n{out.stderr[-2000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {base} {variant}: {rows[-1]['tokens_per_s']} tokens/s", file=sys.stderr)
    where = f"{a.threads} threads"
    if a.device.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(0)}; peak column: GPU memory allocated"
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {where}")
    print(
        f"task {a.task}, batch {a.batch}, {a.steps} timed steps, LoRA r=16 on 7 projections, each model's chat format (auto)\n"
    )
    print("| base | variant | steps/s | tokens/s | × plain | peak MB | max |Δloss| vs plain |")
    print("|---|---|---|---|---|---|---|")
    for base in a.bases:
        by = {r["variant"]: r for r in rows if r["base"] == base}
        plain = by["plain"]
        for v in VARIANTS:
            r = by[v]
            dl = (
                max(abs(x - y) for x, y in zip(r["losses"], plain["losses"], strict=True))
                if v in ("answer", "prefix")
                else None
            )
            print(
                f"| {base} | {v} | {r['steps_per_s']:.3f} | {r['tokens_per_s']:.0f} | "
                f"{r['tokens_per_s'] / plain['tokens_per_s']:.2f} | {r['peak_rss_mb']} | "
                + (f"{dl:.2e}" if dl is not None else "–")
                + " |"
            )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
