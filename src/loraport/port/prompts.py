"""Unlabeled prompts for the behaviour methods (spanfit, distill), and the check that keeps them
apart from the items a port is evaluated on.

    prompts = task_prompts("code_paren", 512, seed=1)        # the task's train split, answers dropped
    prompts = read_prompts("my_prompts.jsonl")                # {"prompt": "..."} per line
    examples = read_examples("few.jsonl")                     # the same, at least 3 (port.synth)
    check_disjoint_prompts(prompts, "code_paren", n_eval=300, eval_seed=0)   # MethodError on overlap
    unlabeled_prompts("code_paren", 512, path=None)           # either source, then the check

Only the prompt text is used: a behaviour method never sees a reference answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from loraport.errors import MethodError
from loraport.tasks import Task, resolve_task
from loraport.tasks.base import normalize_prompt

#: The fewest example prompts prompt synthesis accepts (--examples, a distill `examples` option).
MIN_EXAMPLES = 3


def task_prompts(task: str | Task, n: int, seed: int = 1) -> list[str]:
    """`n` prompts from the task's train split (a procedural task's train and eval splits are
    disjoint by construction: item keys are hashed into one split or the other)."""
    t = resolve_task(task) if isinstance(task, str) else task
    cap = t.available("train")
    if cap is not None and n > cap:
        raise MethodError(f"task {t.name!r} has {cap} train prompts, fewer than the {n} asked for")
    return [it.prompt for it in t.items("train", n, seed=seed)]


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a JSONL file with one {"prompt": "..."} object per line (other fields ignored)."""
    path = Path(path)
    if not path.is_file():
        raise MethodError(f"{path}: no such prompts file")
    out: list[str] = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise MethodError(f"{path}:{no}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str) or not rec["prompt"]:
            raise MethodError(f"{path}:{no}: needs a non-empty string field 'prompt'")
        out.append(rec["prompt"])
    if not out:
        raise MethodError(f"{path}: has no prompts")
    return out


def eval_prompts(task: str | Task, n_eval: int = 300, eval_seed: int = 0) -> dict[str, str]:
    """The task's eval items a study scores (the first `n_eval` drawn with `eval_seed`): normalised
    prompt -> item id."""
    t = resolve_task(task) if isinstance(task, str) else task
    cap = t.available("eval")
    items = t.items("eval", n_eval if cap is None else min(n_eval, cap), seed=eval_seed)
    return {normalize_prompt(it.prompt): it.id for it in items}


def read_examples(path: str | Path) -> list[str]:
    """The few example prompts prompt synthesis starts from (port.synth): a prompts JSONL
    (read_prompts; labels and other fields are ignored) with at least MIN_EXAMPLES prompts."""
    examples = read_prompts(path)
    if len(examples) < MIN_EXAMPLES:
        raise MethodError(
            f"{path}: has {len(examples)} prompt(s); prompt synthesis needs at least {MIN_EXAMPLES} examples"
        )
    return examples


def check_disjoint_prompts(
    prompts: list[str], task: str | Task, n_eval: int = 300, eval_seed: int = 0
) -> None:
    """Refuse prompts that repeat one of the task's eval items (the first `n_eval` drawn with
    `eval_seed`, the items a study scores), compared after whitespace normalisation."""
    t = resolve_task(task) if isinstance(task, str) else task
    evals = eval_prompts(t, n_eval, eval_seed)
    for i, p in enumerate(prompts):
        hit = evals.get(normalize_prompt(p))
        if hit is not None:
            raise MethodError(
                f"prompt {i} ({p[:60]!r}) is eval item {hit} of task {t.name!r}; "
                "a behaviour method must not see the items it is scored on"
            )


def unlabeled_prompts(
    task: str | Task,
    n: int,
    seed: int = 1,
    *,
    path: str | Path | None = None,
    n_eval: int = 300,
    eval_seed: int = 0,
) -> list[str]:
    """The prompts a behaviour method learns from: the JSONL at `path` if given, else `n` of the
    task's train prompts; either way checked against the task's eval items."""
    prompts = read_prompts(path) if path else task_prompts(task, n, seed)
    check_disjoint_prompts(prompts, task, n_eval=n_eval, eval_seed=eval_seed)
    return prompts
