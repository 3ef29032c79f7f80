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
runner fingerprints every tier (TiersOptions.bases), so a study's bases are source, target and
tiers. With `judge: {model, n}`, every eval cell is a judged one (the "judge" eval variant,
registered here and computed by bench.tiers_judge).

Its metrics are bench/tiers_metrics.py and its report report/tiers_report.py; both read stored
records only. `loraport report` imports this module, so nothing torch-heavy is imported at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loraport.bench.cellkinds import EVAL_VARIANTS, EvalVariant
from loraport.bench.kinds import STUDY_KINDS, KindOptions, StudyKind
from loraport.errors import LoraportError

if TYPE_CHECKING:
    from loraport.bench.plan import Planner
    from loraport.bench.spec import Study
    from loraport.evaluate.run import EvalResult

PLAIN, PROCEDURE = "plain", "procedure"


class JudgeSpec(BaseModel):
    """A model judge on a subset of every eval cell of a tiers study (evaluate.judge): the first
    `n` items of each cell, its default prompt, greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    n: int = Field(25, ge=1)
    max_new_tokens: int = Field(16, ge=1)

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from loraport.models import resolve_model

        try:
            resolve_model(v)  # resolves the name only; nothing is loaded
        except LoraportError as e:
            raise ValueError(f"unknown judge model: {e}") from None
        return v


class TiersOptions(KindOptions):
    """The tiers study's own spec fields."""

    tiers: list[str] = Field(
        default_factory=list,
        description="tiers: target bases of one family at several capacities, smallest first",
    )
    judge: JudgeSpec | list[JudgeSpec] | None = Field(
        None,
        description="tiers: a model judge on the first n items of every eval cell, or a list of "
        "judges (a second judge family validates the first)",
    )

    def judges(self) -> list[JudgeSpec]:
        """The study's judges, in order (none, one, or a list)."""
        return [] if self.judge is None else self.judge if isinstance(self.judge, list) else [self.judge]

    def bases(self) -> tuple[str, ...]:
        return tuple(self.tiers)

    def check(self, study: Study) -> None:
        """Two or more distinct tiers, the target one of them, every held-out task with a
        procedure block, and anchors when it ports."""
        from loraport.tasks import get_task

        tiers = self.tiers
        if len(tiers) < 2:
            got = f"only {tiers[0]!r}" if tiers else "none"
            raise ValueError(f"tiers: a tiers study compares at least two capacity tiers (got {got})")
        if len(set(tiers)) < len(tiers):
            raise ValueError(f"tiers: {next(t for t in tiers if tiers.count(t) > 1)!r} is listed twice")
        if study.target not in tiers:
            raise ValueError(f"target: {study.target!r} is not one of the tiers ({', '.join(tiers)})")
        for task in study.heldout:
            if not get_task(task).procedure:
                raise ValueError(
                    f"heldout: task {task!r} carries no procedure block (a tiers study compares plain "
                    "and procedure prompts; see tasks.procedure)"
                )
        if study.methods and not study.anchors:
            raise ValueError("methods: porting to each tier needs anchors; list them")
        models = [j.model for j in self.judges()]
        if len(set(models)) < len(models):
            raise ValueError(f"judge: {next(m for m in models if models.count(m) > 1)!r} is listed twice")


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

    judge = (  # one judge keeps the key it always had
        [j.model_dump(mode="json") for j in study.judge]
        if isinstance(study.judge, list)
        else study.judge.model_dump(mode="json")
    )
    scorers = list(get_task(task).scorers)
    key = content_key("eval", t.fp["target"], adapter, task, t.ev, scorers, {"judge": judge})
    label = f"eval {task} on {t.base['target']} (judged)" + (f" + {adapter[:8]}" if adapter else "")
    params = {"base": t.base["target"], "task": task, "adapter": adapter, **t.ev, "judge": judge}
    return t.add("eval", key, (adapter,), params, label)


def plan_tiers_study(p: Planner, study: Study) -> None:
    """Per task and tier: base and oracle on plain and procedure prompts, and the ports of the
    procedure-trained X adapter (see the module docstring)."""
    from loraport.bench.port_study import anchor_pairs, anchor_subset, method_ports
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
                    pairs = anchor_pairs(t, anchors)
                    for _, _, variant, key in method_ports(t, study, proc, x_key, pairs, seed, n):
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


def _judged(result: EvalResult, params: dict[str, Any]) -> EvalResult:
    from loraport.bench.tiers_judge import judge_eval

    return judge_eval(result, params["task"], params["judge"])


EVAL_VARIANTS.add("judge", EvalVariant(after=_judged))


def tiers_results(folder: str, meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The study's section of docs/results.md (report.tiers_report.results_section)."""
    from loraport.report.tiers_report import results_section

    return results_section(folder, meta, summary)


STUDY_KINDS.add(
    "tiers",
    StudyKind(plan=plan_tiers_study, report=tiers_study_report, options=TiersOptions, results=tiers_results),
)
