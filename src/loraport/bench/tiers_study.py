"""The tiers study: procedure prompts and ports across capacity tiers of one family (issue 21).

    name: tiers
    kind: tiers
    source: tiny-qwen2-x                           # where the X adapter is trained and ported from
    target: tiny-llama-y                           # one of the tiers
    tiers: [tiny-llama-s, tiny-llama-y, tiny-llama-l]   # smallest first
    heldout: [math_proc_add_sub]                   # tasks with a procedure block (tasks.procedure)
    anchors: [math_add, math_sub, ...]             # for the ports (optional with no methods)
    methods: {mean: {}, global_ridge: {}}

    loraport bench studies/tiers.yaml --out runs/tiers

Per task and tier T: T alone on the plain prompts and on the procedure prompts (`<task>@procedure`)
(pre-SFT), the oracle (a LoRA trained on T with the procedure in the prompt, worked completions)
on both (post-SFT), and each method variant's port of X's adapter (trained on the source the same
way) to T at each N and seed, on the procedure prompts. Records carry task, tier, tier_index,
stage (base | sft | port), prompt (plain | procedure), and for ports variant, n_anchors, seed;
condition names say `tier<i>` (a tier may be a folder path, which cannot name a record file).

Each tier is planned by a planner whose target is that tier (the same cells a port study with
that target would plan: an oracle of T here is the train cell a port study to T trains). The
runner fingerprints every tier (`Study.tiers`), so a study's bases are source, target and tiers.

Its metrics are bench/tiers_metrics.py and its report report/tiers_report.py; both read stored
records only. `loraport report` imports this module, so nothing torch-heavy is imported at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraport.bench.kinds import STUDY_KINDS, StudyKind

if TYPE_CHECKING:
    from loraport.bench.plan import Planner
    from loraport.bench.spec import Study

PLAIN, PROCEDURE = "plain", "procedure"


def tier_planner(p: Planner, study: Study, tier: str) -> Planner:
    """A planner whose target is `tier`, adding to `p`'s cells, conditions and skipped list."""
    from loraport.bench.plan import Planner

    sub = Planner(study.model_copy(update={"target": tier}), p.fingerprints, p.device)
    sub.cells, sub.conditions, sub.skipped = p.cells, p.conditions, p.skipped
    return sub


def evaluate(t: Planner, study: Study, task: str, adapter: str | None) -> str:
    """The tier's eval cell of `task` (with adapter cell `adapter` or none); with the study's
    judge, a judged eval cell instead (its params carry "judge", keyed apart: bench.tiers_judge)."""
    if study.judge is None:
        return t.evaluate("target", task, adapter)
    from loraport.bench.store import content_key
    from loraport.tasks import get_task

    judge = study.judge.model_dump(mode="json")
    scorers = list(get_task(task).scorers)
    key = content_key("eval", t.fp["target"], adapter, task, t.ev, scorers, {"judge": judge})
    label = f"eval {task} on {t.base['target']} (judged)" + (f" + {adapter[:8]}" if adapter else "")
    params = {"base": t.base["target"], "task": task, "adapter": adapter, **t.ev, "judge": judge}
    return t.add("eval", key, (adapter,), params, label)


def plan_tiers_study(p: Planner, study: Study) -> None:
    """Per task and tier: base and oracle on plain and procedure prompts, and the ports of the
    procedure-trained X adapter (see the module docstring)."""
    from loraport.bench.port_study import anchor_subset, port
    from loraport.bench.spec import variant_name
    from loraport.tasks import get_task
    from loraport.tasks.procedure import SUFFIX

    for task in study.heldout:
        proc = task + SUFFIX
        prompts = {PLAIN: task, PROCEDURE: proc}
        for i, tier in enumerate(study.tiers):
            t = tier_planner(p, study, tier)
            common = {"task": task, "domain": get_task(task).domain, "tier": tier, "tier_index": i}
            oracle = t.train("target", proc, label=f"train {proc} on {tier}")
            for prompt, name in prompts.items():
                for stage, adapter in (("base", None), ("sft", oracle)):
                    p.conditions[f"{task}__tier{i}__{stage}__{prompt}"] = {
                        **common,
                        "stage": stage,
                        "prompt": prompt,
                        "eval": evaluate(t, study, name, adapter),
                        **({"train": adapter} if adapter else {}),
                    }
            if not study.methods:
                continue
            x_key = t.train("source", proc)
            for seed in study.seeds:
                for n in study.n_anchors:
                    anchors = anchor_subset(study.anchors, n, seed, "all")
                    pairs = [(a, t.train("source", a), t.train("target", a)) for a in anchors]
                    for method, options in study.method_variants():
                        variant = variant_name(method, options)
                        if options.get("k", 0) > n:
                            p.skipped.append(f"{variant} at N={n}: K exceeds N")
                            continue
                        key = port(t, method, options, proc, x_key, pairs, seed, n)
                        p.conditions[f"{task}__tier{i}__{variant}__N{n}__s{seed}__{PROCEDURE}"] = {
                            **common,
                            "stage": "port",
                            "prompt": PROCEDURE,
                            "variant": variant,
                            "n_anchors": n,
                            "anchors": anchors,
                            "seed": seed,
                            "port": key,
                            "eval": evaluate(t, study, proc, key),
                        }


def tiers_study_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The tiers report (report.tiers_report): pre-Δ, post-Δ and lift per tier, port quality per
    tier, shape lines, scorer agreement and the threats list."""
    from loraport.report.tiers_report import tiers_report

    return tiers_report(run_dir, meta, records)


STUDY_KINDS.add("tiers", StudyKind(plan=plan_tiers_study, report=tiers_study_report))
