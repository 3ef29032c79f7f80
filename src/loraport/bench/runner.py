"""Running a study: plan, compute what is missing (stage by stage), write one record per condition.

    summary = run_study(load_study("studies/demo.yaml"), "runs/demo")             # local
    run_study(study, "runs/demo", executor="ray", address="10.0.0.5:6379")
    run_study(study, "runs/demo", workers=1, threads=2)   # one cell at a time, 2 torch threads
    run_study(study, "runs/demo", device="cuda")      # on the GPU (default "auto": GPU if torch sees one)
    run_study(study, "runs/demo", dry_run=True)       # the plan and what is cached, nothing computed

Re-running resumes: finished cells are found in the store by content key and skipped.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from loraport import __version__
from loraport.bench.cellkinds import stages
from loraport.bench.executors import EXECUTORS, check_ray_address
from loraport.bench.plan import Plan, make_plan
from loraport.bench.spec import Study
from loraport.bench.store import Store
from loraport.device import resolve_device
from loraport.io import atomic_file
from loraport.parallel import check_workers


def plan_study(study: Study, device: str = "cpu", build: bool = True) -> Plan:
    """The study's cells. Cache keys need the bases' weight fingerprints, so zoo bases are built
    first; with build=False an unbuilt zoo base gets a placeholder fingerprint instead (its cells
    then match nothing in any cache: they are all still to compute)."""
    from loraport.models import resolve_model
    from loraport.zoo import build_many, is_built, zoo_specs

    bases = study.bases()  # source, target and any its kind adds (a tiers study's tiers)
    unbuilt = [s for s in bases if s in zoo_specs() and not is_built(s)]
    if build:
        build_many(unbuilt)  # where cores allow, at once
        unbuilt = []
    fps = {s: f"unbuilt:{s}" if s in unbuilt else resolve_model(s).fingerprint for s in bases}
    for s in bases:
        if s in unbuilt:
            continue
        tok = _study_tokenizer(s, study.chat_template, convert=build)
        fps[s] += _chat_suffix(tok)
        if (
            build and tok is not None and tok is not False and s not in zoo_specs()
        ):  # zoo tasks fit zoo tokenizers
            check_lengths(study, s, tok)
    return make_plan(study, fps, device)


def _study_tokenizer(spec: str, mode: str, *, convert: bool) -> Any:
    """The base's tokenizer under the study's chat mode (None when it has none). False for a GGUF
    not converted yet when `convert` is off: a dry run does not convert, so it cannot know."""
    from loraport.models import load_tokenizer, resolve_model
    from loraport.models.chat import use_chat_template

    ref = resolve_model(spec)
    if ref.gguf_file is not None and not ref.converted and not convert:
        return False
    with use_chat_template(mode):
        return load_tokenizer(spec)


def check_lengths(study: Study, spec: str, tok: Any) -> None:
    """StudyError before any work when a training item of the study, formatted for base `spec` with
    its tokenizer `tok` (as `load_tokenizer` gives it under the study's chat mode), is longer than
    `recipe.max_length` tokens: X and Y tokenize differently, so a recipe that fits one base may
    not fit the other."""
    from loraport.bench.spec import StudyError
    from loraport.models.chat import chat_format
    from loraport.tasks import get_task

    fmt, cap = chat_format(tok), study.recipe.max_length
    for name in dict.fromkeys([*study.anchors, *study.heldout]):
        items = get_task(name).items("train", study.recipe.examples, seed=study.recipe.seed)
        texts = [fmt.render(it.prompt) + it.completion() for it in items]
        lengths = [
            len(ids) + len(fmt.answer_end) for ids in tok(texts, add_special_tokens=False)["input_ids"]
        ]
        worst = max(range(len(items)), key=lengths.__getitem__)
        if lengths[worst] > cap:
            raise StudyError(
                f"study {study.name!r}: recipe.max_length {cap} is too short for task {name!r} on {spec}: "
                f"item {items[worst].id} is {lengths[worst]} tokens"
            )


def _chat_suffix(tok: Any) -> str:
    """'+chat:<digest>' when the tokenizer carries a chat format ('' for raw prompts, so keys of
    bases without a template are the same as before chat formats existed). An unconverted GGUF in a
    dry run (`tok is False`) gets a placeholder: its cells are then all counted as to compute."""
    from loraport.models.chat import chat_format

    if tok is False:
        return "+chat:unconverted"
    if tok is None:
        return ""
    digest = chat_format(tok).digest
    return f"+chat:{digest}" if digest else ""


def run_study(
    study: Study,
    run_dir: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    threads: int | None = None,
    workers: int | None = None,
    dry_run: bool = False,
    cache: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any] | None:
    """Plan `study`, compute the missing cells stage by stage (train, teach, port, distill,
    control, eval) into `run_dir` (or the shared `cache`), write one record per condition and
    build the report; returns the report's summary (None for a dry run, which only prints what
    would be computed). Cells already in the store are reused, so a killed run resumes. `executor`
    "local" (with `workers` processes, `threads` torch threads each) or "ray" (`address`);
    `device` "auto" picks a GPU where torch sees one (CPU and GPU cells have different keys).

        summary = run_study(load_study("studies/quick.yaml"), "runs/quick", workers=2)
    """
    if executor == "ray" and address:
        check_ray_address(address)
    EXECUTORS.get(executor)  # unknown executor: fail before any work
    check_workers(workers)
    device = resolve_device(device)  # auto: a GPU where torch sees one
    start = time.perf_counter()
    store = Store(run_dir, cache)
    plan = plan_study(study, device, build=not dry_run)
    order = stages()  # every registered cell kind, in the order they compute (bench.cellkinds)
    todo = {k: [c for c in plan.by_kind(k) if not store.has(k, c.key)] for k in order}
    for k in order:
        total = len(plan.by_kind(k))
        shipped = sum(1 for c in todo[k] if c.params.get("shipped"))
        copied = f" ({shipped} of them copied from the shipped adapters)" if shipped else ""
        log(f"{k:>5}: {total} cells, {total - len(todo[k])} cached, {len(todo[k])} to compute{copied}")
    if device != "cpu":
        log(f"device: {device} (cells keyed apart from CPU results)")
    for reason in plan.skipped:
        log(f"skipped: {reason}")
    for spec, fp in plan.fingerprints.items():
        if fp.startswith("unbuilt:"):
            log(f"zoo base {spec} is not built yet: a run builds it first (125 s each, measured on 2 cores)")
    if dry_run:
        return None
    store.root.mkdir(parents=True, exist_ok=True)
    if cache is None:  # a shared cache may hold another study's writes in progress
        store.sweep()
    runner = EXECUTORS.get(executor)(address=address, threads=threads, workers=workers, device=device)
    lines = progress and not sys.stdout.isatty()
    labels = {c.key: c.label for c in plan.cells.values()}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    stage_seconds: dict[str, float] = {}
    try:
        from loraport.train.loop import progress_bar

        with progress_bar(progress) as bar:
            for kind in order:
                cells = []
                for c in todo[kind]:
                    if any(d in errors for d in c.deps):
                        errors[c.key] = f"{c.label}: skipped, a dependency failed"
                    else:
                        cells.append(c)
                if not cells:
                    continue
                job = bar.add_task(f"{kind} ({len(cells)})", total=len(cells), info="")
                count = [0]
                if lines:
                    log(f"{kind}: {len(cells)} cells to compute")

                def done(res: dict[str, Any], job=job, count=count, n=len(cells), kind=kind) -> None:
                    bar.advance(job)
                    count[0] += 1
                    if lines:  # no live bar (a log file, nohup, CI): one line per finished cell
                        label = labels.get(res["key"], res["key"][:12])
                        log(
                            f"{kind} {count[0]}/{n} {label}: {res['seconds']:.1f} s "
                            f"(elapsed {time.perf_counter() - start:.0f} s)"
                            + (
                                " (alone, after running out of memory beside others)"
                                if res.get("retried_alone")
                                else ""
                            )
                            + (" FAILED" if res["error"] else "")
                        )
                    timings[res["key"]] = res["seconds"]
                    if res["error"]:
                        errors[res["key"]] = res["error"]
                        log(f"failed: {res['error']}")

                t0 = time.perf_counter()
                runner.map(cells, store, done)
                stage_seconds[kind] = round(time.perf_counter() - t0, 1)
    finally:
        runner.close()
    write_records(store, plan, study, errors, timings)
    this_run = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - start, 1),
        "stage_seconds": stage_seconds,
        "computed": {k: len(todo[k]) for k in order},
        "executor": executor,
        "workers": getattr(runner, "workers", None),
        "device": device,
        "loraport_version": __version__,
    }
    runs = [*previous_runs(store.root / "run.json"), this_run]
    meta = {
        "study": study.model_dump(mode="json"),
        "python": platform.python_version(),
        "torch": _torch_version(),
        "bases": plan.fingerprints,
        **{k: this_run[k] for k in RUN_FIELDS},  # this invocation's, as its entry in `runs` says
        "cells": {k: len(plan.by_kind(k)) for k in order},
        "skipped": plan.skipped,
        # every invocation on this run folder, oldest first: a resumed study's cold cost is the sum
        "runs": runs,
        "seconds_total": round(sum(r["seconds"] for r in runs), 1),
    }
    with atomic_file(store.root / "run.json") as fh:
        json.dump(meta, fh, indent=1)
    from loraport.report import build_report

    return build_report(store.root)


#: The fields of one invocation that run.json keeps both at its top level (the latest) and per entry
#: of `runs` (every invocation on the run folder).
RUN_FIELDS = ("seconds", "stage_seconds", "computed", "executor", "workers", "device", "loraport_version")


def previous_runs(path: Path) -> list[dict[str, Any]]:
    """The invocations an earlier run.json in this run folder recorded (one, built from its own
    fields, when it predates the history); [] when there is none or it cannot be read."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict):
        return []
    if isinstance(old.get("runs"), list):
        return [r for r in old["runs"] if isinstance(r, dict) and isinstance(r.get("seconds"), int | float)]
    if not isinstance(old.get("seconds"), int | float):
        return []
    return [{k: old.get(k) for k in RUN_FIELDS}]


def _torch_version() -> str:
    import torch

    return torch.__version__


def write_records(
    store: Store, plan: Plan, study: Study, errors: dict[str, str], timings: dict[str, float]
) -> None:
    from loraport.evaluate import EvalResult

    if store.records.is_dir():  # records of conditions the (edited) study no longer has
        for stale in set(p.stem for p in store.records.glob("*.json")) - set(plan.conditions):
            store.record(stale).unlink()
    for name, cond in plan.conditions.items():
        record = {"name": name, **{k: v for k, v in cond.items() if k != "eval"}, "eval_key": cond["eval"]}
        path = store.eval(cond["eval"])
        if not path.is_file():
            reason = errors.get(cond["eval"]) or errors.get(cond.get("port", ""), "not computed")
            record["missing"] = reason
        else:
            res = EvalResult.load(path)
            record["scorers"] = {}
            for s in res.scorers():
                rows = [r for r in res.records if r.scorer == s]
                record["scorers"][s] = {
                    "ids": [r.id for r in rows],
                    "correct": [int(r.correct) for r in rows],
                    "invalid": [int(r.status == "invalid") for r in rows],
                }
                if s in CHOICE_SCORERS:  # the letter each item got (None: no parseable answer)
                    record["scorers"][s]["answers"] = [
                        r.extracted if r.status != "invalid" else None for r in rows
                    ]
            record["primary"] = study.scorers.get(cond["task"], res.scorers()[0])
            if any(s in CHOICE_SCORERS for s in record["scorers"]):
                record["chance"] = chance(cond["task"], study)
            record["samples"] = samples(res, record["primary"], prompts(cond["task"], study))
            adapter = res.provenance.get("adapter") or {}
            record["provenance"] = {
                "base": res.provenance.get("base", {}).get("fingerprint"),
                # the adapter's place in this run's store, relative to the run directory (or absolute
                # for a shared cache outside it), whatever folder the run was started from
                "adapter": adapter.get("path") and store.relative(store.adapter(Path(adapter["path"]).name)),
            }
        if "port" in cond:
            record["port_seconds"] = timings.get(cond["port"])
            provenance = port_provenance(store, cond["port"])
            record["cost"] = provenance.get("cost")
            if "topk_selected" in provenance:  # the K anchors a Top-K port chose out of its N
                record["topk_selected"] = provenance["topk_selected"]
        elif "train" in cond:
            record["cost"] = train_cost(store, cond["train"])
        store.write_record(name, record)


#: Scorers whose extracted answer is one of an item's choices (a letter): records keep each item's
#: answer, so a report can show a condition's answer distribution and flag (nearly) constant answers.
CHOICE_SCORERS = frozenset({"choice_letter", "loglik_choice"})
_EVAL_ITEMS: dict[tuple, list[Any]] = {}


def eval_items(task: str, study: Study) -> list[Any]:
    """The task's eval items the study scores (its n, capped by what the task has, and its seed),
    drawn once per task and study settings."""
    key = (task, study.eval.n, study.eval.seed)
    if key not in _EVAL_ITEMS:
        from loraport.tasks import resolve_task

        t = resolve_task(task)
        cap = t.available("eval")
        n = study.eval.n if cap is None else min(study.eval.n, cap)
        _EVAL_ITEMS[key] = t.items("eval", n, seed=study.eval.seed)
    return _EVAL_ITEMS[key]


def chance(task: str, study: Study) -> float | None:
    """The accuracy of answering uniformly at random on the study's eval items of a choice task:
    the mean over items of 1 / their number of choices (None if some item has no choices)."""
    items = eval_items(task, study)
    if not items or not all(it.choices for it in items):
        return None
    return round(sum(1 / len(it.choices) for it in items) / len(items), 6)


#: Items per record whose text (prompt, output, reference, verdict) the record keeps, for the HTML
#: report's per-task drill-down; the same first items in every condition of a task.
SAMPLES = 4
SAMPLE_CHARS = 600


def prompts(task: str, study: Study) -> dict[str, str]:
    """The prompt of each of the first SAMPLES eval items the study scores, by item id."""
    return {it.id: it.prompt for it in eval_items(task, study)[:SAMPLES]}


def samples(res: Any, scorer: str, prompts: dict[str, str]) -> list[dict[str, Any]]:
    """The first SAMPLES items of an evaluation, as the primary scorer saw them (texts clipped)."""

    def clip(text: str | None) -> str | None:
        return text if text is None or len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"

    rows = [r for r in res.records if r.scorer == scorer][:SAMPLES]
    return [
        {
            "id": r.id,
            "prompt": clip(prompts.get(r.id)),
            "prediction": clip(r.prediction),
            "extracted": clip(r.extracted),
            "answer": clip(r.answer),
            "correct": bool(r.correct),
            "status": r.status,
        }
        for r in rows
    ]


def port_provenance(store: Store, key: str) -> dict[str, Any]:
    """What a port recorded about itself (cost, Top-K choice, ...); {} when the port is missing."""
    from loraport.adapters import load_adapter

    if not store.has("port", key):
        return {}
    return load_adapter(store.adapter(key)).provenance


def train_cost(store: Store, key: str) -> dict[str, Any] | None:
    """A trained adapter's cost from its training log: labels seen, steps, wall time."""
    from loraport.train import LOG_NAME

    path = store.adapter(key) / LOG_NAME
    if not path.is_file():
        return None
    log = json.loads(path.read_text())
    return {
        "seconds": log["seconds"],
        "steps": log["steps"],
        "generated_tokens": 0,
        "data": "labels",
        "examples": log["recipe"]["examples"],
    }
