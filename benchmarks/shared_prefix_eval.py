"""Evaluation speed with a shared few-shot prefix: `generate(share_prefix=True)` against full prompts,
on the same items, in the same run, alternating so that machine noise hits both alike.

A two-shot task's prompts all start with the same two solved items; with `share_prefix` their keys
and values are computed once and each batch continues from a copy. Reported per base and task: the
prompts' token length and shared prefix, wall seconds of each variant (median of `--repeats`), the
ratio, and how many generated texts agree (they should all: the same computation up to rounding).
For a choice task, the log-likelihood scorer's pass (`continuation_logprobs`, every choice after
the item's context) is timed the same two ways, with the largest difference between their scores.

    python benchmarks/shared_prefix_eval.py                                   # Gemma-3-270M, 64 items
    python benchmarks/shared_prefix_eval.py --bases tiny-llama-y --tasks math_add@2shot --n 300
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time


def measure(base: str, task: str, n: int, repeats: int, max_new: int, threads: int) -> dict:
    import torch

    from loraport.evaluate.generate import continuation_logprobs, generate, shared_prefix_length
    from loraport.models import load_model
    from loraport.models.chat import chat_format
    from loraport.tasks import resolve_task

    torch.set_num_threads(threads)
    model, tok, _ = load_model(base)
    items = resolve_task(task).items("eval", n)
    prompts = [it.prompt for it in items]
    fmt = chat_format(tok)
    enc = tok([fmt.render(p) for p in prompts], add_special_tokens=False)["input_ids"]
    seconds: dict[bool, list[float]] = {False: [], True: []}
    texts: dict[bool, list[str]] = {}
    for _ in range(repeats):
        for share in (False, True):
            start = time.perf_counter()
            texts[share] = generate(model, tok, prompts, max_new_tokens=max_new, share_prefix=share)
            seconds[share].append(time.perf_counter() - start)
    full, shared = statistics.median(seconds[False]), statistics.median(seconds[True])
    loglik = {}
    if all(it.choices for it in items):  # as evaluate.run scores loglik_choice
        pairs = [(it.meta.get("question", it.prompt).rstrip(), " " + c) for it in items for c in it.choices]
        ll_seconds: dict[bool, list[float]] = {False: [], True: []}
        scores: dict[bool, list] = {}
        for _ in range(repeats):
            for share in (False, True):
                start = time.perf_counter()
                scores[share] = continuation_logprobs(model, tok, pairs, share_prefix=share)
                ll_seconds[share].append(time.perf_counter() - start)
        ll_full, ll_shared = statistics.median(ll_seconds[False]), statistics.median(ll_seconds[True])
        loglik = {
            "loglik_pairs": len(pairs),
            "loglik_full_s": round(ll_full, 2),
            "loglik_shared_s": round(ll_shared, 2),
            "loglik_speedup": round(ll_full / ll_shared, 2),
            "loglik_max_diff": max(
                abs(a[0] - b[0]) for a, b in zip(scores[False], scores[True], strict=True)
            ),
        }
    return {
        "base": base,
        "task": task,
        "items": len(prompts),
        "prompt_tokens": [min(map(len, enc)), max(map(len, enc))],
        "shared_prefix": shared_prefix_length(enc),
        "full_s": round(full, 2),
        "shared_s": round(shared, 2),
        "speedup": round(full / shared, 2),
        "same_texts": sum(a == b for a, b in zip(texts[False], texts[True], strict=True)),
        **loglik,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bases", nargs="+", default=["gemma3-270m"])
    ap.add_argument("--tasks", nargs="+", default=["code_cond_arith@2shot", "sci_context_which@2shot"])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = [measure(b, t, a.n, a.repeats, a.max_new, a.threads) for b in a.bases for t in a.tasks]
    print("| base | task | items | prompt tokens | shared prefix | full (s) | shared (s) | × | same texts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["prompt_tokens"]
        print(
            f"| {r['base']} | {r['task']} | {r['items']} | {lo}–{hi} | {r['shared_prefix']} | "
            f"{r['full_s']} | {r['shared_s']} | {r['speedup']} | {r['same_texts']} of {r['items']} |"
        )
    ll = [r for r in rows if "loglik_pairs" in r]
    if ll:
        print()
        print(
            "| base | task | choices scored | full (s) | shared prefix (s) | × | largest score difference |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in ll:
            print(
                f"| {r['base']} | {r['task']} | {r['loglik_pairs']} | {r['loglik_full_s']} | "
                f"{r['loglik_shared_s']} | {r['loglik_speedup']} | {r['loglik_max_diff']:.2e} |"
            )
    if a.json:
        meta = {"machine": platform.processor() or platform.machine(), "threads": a.threads}
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
