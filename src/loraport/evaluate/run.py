"""Scoring a base model (optionally with an adapter) on task items, keeping every item's result.

    result = evaluate("tiny-llama-y", "math_mul_add", adapter="runs/y-oracle", n=300)
    result.accuracy()               # primary scorer
    result.summary()                # per scorer: n, correct, invalid, accuracy
    result.save("eval.jsonl")       # one record per (item, scorer)

Generation scorers share one greedy generation per item; `loglik_choice` ranks the choices by the
summed log-probability of " " + choice after the question (without the lettered list). Code is
run in the sandbox. Records carry the prediction, the extracted answer, correctness and the parse
status, because the bench's paired statistics are computed from them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from loraport.device import module_device
from loraport.errors import TaskError
from loraport.evaluate.generate import continuation_logprobs, generate
from loraport.io import atomic_file
from loraport.models.chat import chat_format
from loraport.scorers import SCORERS, Verdict, score_code_batch
from loraport.tasks import Item, Task, resolve_task, warn_if_small
from loraport.tasks.base import LETTERS
from loraport.train.data import check_encodable


@dataclass(frozen=True)
class Record:
    """One item scored by one scorer."""

    id: str
    task: str
    scorer: str
    correct: bool
    status: str
    extracted: str | None
    prediction: str
    answer: str
    detail: str | None = None


@dataclass
class EvalResult:
    task: str
    records: list[Record]
    provenance: dict[str, Any] = field(default_factory=dict)

    def scorers(self) -> list[str]:
        return list(dict.fromkeys(r.scorer for r in self.records))

    def accuracy(self, scorer: str | None = None) -> float:
        scorer = scorer or self.scorers()[0]
        rows = [r for r in self.records if r.scorer == scorer]
        return sum(r.correct for r in rows) / len(rows) if rows else float("nan")

    def summary(self) -> dict[str, dict[str, float | int]]:
        out = {}
        for s in self.scorers():
            rows = [r for r in self.records if r.scorer == s]
            out[s] = {
                "n": len(rows),
                "correct": sum(r.correct for r in rows),
                "invalid": sum(r.status == "invalid" for r in rows),
                "accuracy": sum(r.correct for r in rows) / len(rows),
            }
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """JSONL: a header line {"task", "provenance", "summary"} then one line per record."""
        with atomic_file(path) as fh:
            fh.write(
                json.dumps({"task": self.task, "provenance": self.provenance, "summary": self.summary()})
                + "\n"
            )
            for r in self.records:
                fh.write(json.dumps(asdict(r)) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvalResult:
        lines = Path(path).read_text().splitlines()
        head = json.loads(lines[0])
        return cls(head["task"], [Record(**json.loads(x)) for x in lines[1:]], head.get("provenance", {}))


#: Extra tokens a chat-formatted model may spend reasoning before its answer.
REASONING_TOKENS = 64


def max_new_tokens(tokenizer, items: Sequence[Item]) -> int:
    """A generation budget from the reference answers: the longest, plus a margin for near misses,
    plus REASONING_TOKENS under a chat format (an instruct model may explain before it answers;
    one that learned the task's format stops at its end-of-turn token long before)."""
    texts = [it.completion() for it in items]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    extra = REASONING_TOKENS if chat_format(tokenizer).active else 0
    return min(512, int(max(lengths) * 1.25) + 4 + extra)


def _loglik_verdicts(model, tokenizer, items: Sequence[Item], batch: int) -> tuple[list[Verdict], list[str]]:
    pairs, spans = [], []
    for it in items:
        if not it.choices:
            raise TaskError(f"item {it.id}: loglik_choice needs choices")
        question = it.meta.get("question", it.prompt).rstrip()
        spans.append((len(pairs), len(it.choices)))
        pairs += [(question, " " + c) for c in it.choices]
    scores = continuation_logprobs(model, tokenizer, pairs, batch=batch)
    verdicts, texts = [], []
    for it, (start, k) in zip(items, spans, strict=True):
        lps = [scores[start + j][0] for j in range(k)]
        best = max(range(k), key=lambda j: lps[j])
        letter = LETTERS[best]
        verdicts.append(
            Verdict(letter == it.answer.strip().upper(), letter, "ok", " ".join(f"{x:.3f}" for x in lps))
        )
        texts.append(it.choices[best])
    return verdicts, texts


def evaluate_items(
    model: torch.nn.Module,
    tokenizer,
    items: Sequence[Item],
    scorers: Sequence[str],
    *,
    task: str,
    batch: int = 64,
    workers: int | None = None,
    progress=None,
    max_new: int | None = None,
) -> EvalResult:
    """Score `items` with each of `scorers` (sharing one generation among generative scorers).
    `max_new` caps generated tokens; by default it follows the reference answers' length, which
    suits models trained on the task's format but cuts off a real model that reasons first."""
    for s in scorers:
        if s != "loglik_choice":
            SCORERS.get(s)  # an unknown name raises TaskError naming the closest scorer
    check_encodable(tokenizer, [it.prompt for it in items[:64]], f"task {task!r}")
    records: list[Record] = []
    predictions: list[str] | None = None
    seconds: dict[str, float] = {}
    if any(s != "loglik_choice" for s in scorers):
        start = time.perf_counter()
        predictions = generate(
            model,
            tokenizer,
            [it.prompt for it in items],
            max_new_tokens=max_new or max_new_tokens(tokenizer, items),
            batch=batch,
            on_batch=progress,
        )
        seconds["generate"] = time.perf_counter() - start
    for s in scorers:
        start = time.perf_counter()
        if s == "loglik_choice":
            verdicts, preds = _loglik_verdicts(model, tokenizer, items, batch)
        elif s == "code_exec":
            verdicts, preds = score_code_batch(predictions, items, workers=workers), predictions
        else:
            fn = SCORERS.get(s)
            verdicts, preds = [fn(p, it) for p, it in zip(predictions, items, strict=True)], predictions
        records += [
            Record(it.id, task, s, bool(v.correct), v.status, v.extracted, p, it.answer, v.detail)
            for it, v, p in zip(items, verdicts, preds, strict=True)
        ]
        seconds[s] = time.perf_counter() - start
    return EvalResult(
        task,
        records,
        {
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "chat": chat_format(tokenizer).provenance(),
        },
    )


def evaluate(
    base: str | os.PathLike[str],
    task: str | Task,
    *,
    adapter: str | os.PathLike[str] | None = None,
    n: int = 300,
    seed: int = 0,
    scorers: Sequence[str] | None = None,
    batch: int = 64,
    progress=None,
    max_new: int | None = None,
    device: str | None = None,
) -> EvalResult:
    """Load `base` (+ `adapter`, merged) on `device` (None: the current one), draw `n` eval items of
    `task` and score them."""
    from loraport.evaluate.merge import merge_adapter
    from loraport.models import load_model

    task = resolve_task(task) if isinstance(task, str | os.PathLike) else task
    model, tokenizer, ref = load_model(base, device=device)
    if tokenizer is None:
        raise TaskError(f"base {base}: has no tokenizer, so it cannot be evaluated on text")
    adapter_prov = merge_adapter(model, adapter) if adapter is not None else None
    cap = task.available("eval")
    items = task.items("eval", n if cap is None else min(n, cap), seed=seed)
    warn_if_small(task, len(items))
    result = evaluate_items(
        model,
        tokenizer,
        items,
        scorers or task.scorers,
        task=task.name,
        batch=batch,
        progress=progress,
        max_new=max_new,
    )
    result.provenance = {
        **result.provenance,
        "base": ref.provenance(),
        "adapter": adapter_prov,
        "task": task.name,
        "eval_seed": seed,
        "n": len(items),
        "torch": torch.__version__,
        "device": str(module_device(model)),
    }
    return result
