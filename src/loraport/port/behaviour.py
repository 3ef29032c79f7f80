"""The behaviour methods: `align`, `spanfit`, `distill`. None is fitted on anchor Grams; each plans
its own cells (spanfit and distill: the teacher's answers; distill: an init port), computes them,
and ports through its own entry point (port.align, port.spanfit, port.distill).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from loraport.errors import MethodError, closest
from loraport.port.methods import METHODS, PortJob, PortMethod, anchors_of, get_method, register_method


class AlignOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: int = Field(256, ge=8)  # generic-text lines both bases read
    ridge: float = Field(1.0, gt=0)  # relative ridge of the least-squares hidden-space maps


class BehaviourMethod(PortMethod):
    """A method that reads the source base (found from --source-base, the anchors, or the
    adapter's base_model) instead of fitting on anchor Grams."""

    scope = "behaviour"

    def port(self, job: PortJob) -> Path:
        from loraport.port.anchors import load_anchors

        spec = load_anchors(job.anchors) if job.anchors is not None else None
        source = job.source_base or (spec.source_base if spec else None) or job.adapter.base_model
        if not source:
            raise MethodError(f"method {self.name!r}: give --source-base (the adapter names no base model)")
        return self.port_from(job, source, spec)

    def port_from(self, job: PortJob, source: str, spec: Any) -> Path:
        raise NotImplementedError


class PromptOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: int = Field(512, ge=1)  # unlabeled prompts of the task (train split; never eval items)
    prompt_seed: int = 1
    max_new_tokens: int = Field(64, ge=1)  # teacher answer budget


class TeacherMethod(BehaviourMethod):
    """A behaviour method that learns from the source + input adapter's answers to unlabeled
    prompts: in a study, a "teach" cell; in `loraport port`, the prompts of --task or --prompts."""

    def prompts(self, job: PortJob) -> Any:
        """The unlabeled prompts of a `loraport port` call, checked disjoint from its eval data."""
        from loraport.port.prompts import read_prompts, unlabeled_prompts

        o = self.options()
        if job.task is None and job.prompts is None:
            raise MethodError(
                f"method {self.name!r} needs --prompts (your unlabeled prompts) or --task (a task's train prompts)"
            )
        if job.task is None:
            prompts = read_prompts(job.prompts)
        else:
            prompts = unlabeled_prompts(
                job.task,
                o["prompts"],
                o["prompt_seed"],
                path=job.prompts,
                n_eval=job.eval_n,
                eval_seed=job.eval_seed,
            )
        self.check_eval_data(job, prompts)
        return prompts

    @staticmethod
    def check_eval_data(job: PortJob, prompts: list[str]) -> None:
        from loraport.port.prompts import check_disjoint_prompts

        if job.eval_data is not None:
            from loraport.tasks import load_eval_jsonl

            held = load_eval_jsonl(job.eval_data)
            check_disjoint_prompts(prompts, held, n_eval=held.available("eval"), eval_seed=0)

    def synthesized(self, job: PortJob, source: str) -> Any:
        """With --examples FEW.jsonl (or, with --task, an `examples` option: that many of the task's
        train prompts), the examples plus prompts synthesized from them (port.synth); else None.
        The examples must not repeat eval items; synthesized prompts that do are dropped."""
        from loraport.port.prompts import check_disjoint_prompts, eval_prompts, read_examples, task_prompts
        from loraport.port.synth import synthesize_prompts

        o = self.options()
        count = o.get("examples")
        if job.examples is None and count is None:
            return None
        if job.examples is not None and job.prompts is not None:
            raise MethodError("give --examples (prompts are synthesized from them) or --prompts, not both")
        if job.examples is not None:
            examples = read_examples(job.examples)
        elif job.task is None:
            raise MethodError(
                f"method {self.name!r}: option examples={count} takes them from --task; give --task"
            )
        else:
            examples = task_prompts(job.task, count, o["prompt_seed"])
        evals: set[str] = set()
        if job.task is not None:
            check_disjoint_prompts(examples, job.task, n_eval=job.eval_n, eval_seed=job.eval_seed)
            evals |= set(eval_prompts(job.task, job.eval_n, job.eval_seed))
        if job.eval_data is not None:
            from loraport.tasks import load_eval_jsonl

            held = load_eval_jsonl(job.eval_data)
            self.check_eval_data(job, examples)
            evals |= set(eval_prompts(held, held.available("eval"), 0))
        # read from the options themselves: the dump leaves them out without an `examples` count
        base = source if getattr(self.opts, "synthesizer", "target") == "source" else job.target_base
        mode = getattr(self.opts, "synthesis", "listing")
        syn = synthesize_prompts(base, examples, o["prompts"], seed=o["prompt_seed"], evals=evals, mode=mode)
        if job.task is not None:
            check_disjoint_prompts(syn.prompts, job.task, n_eval=job.eval_n, eval_seed=job.eval_seed)
        self.check_eval_data(job, syn.prompts)
        return syn

    def teacher_answers(self, job: PortJob, source: str) -> Any:
        """The teacher's answers to the call's prompts (given, a task's, or synthesized), with the
        synthesis's cost charged to them."""
        from loraport.port.synth import charge

        syn = self.synthesized(job, source)
        prompts = syn.prompts if syn is not None else self.prompts(job)
        return charge(self.answers(job, source, prompts), syn)

    def answers(self, job: PortJob, source: str, prompts: Any) -> Any:
        from loraport.port.teacher import teach

        o = self.options()
        return teach(
            source, job.adapter.path, prompts, max_new_tokens=o["max_new_tokens"], progress=job.progress
        )


@register_method
class Align(BehaviourMethod):
    name = "align"
    requires = frozenset({"source_base", "generic_text"})
    needs = "nothing: the two bases and generic text"
    summary = "CKA layer map + least-squares hidden-space maps on paired states; ΔW transformed per module"
    Options = AlignOptions

    def plan(self, req):
        fp = req.fp
        key = req.key("port", self.name, self.options(), req.x_key, fp["source"], fp["target"], req.target)
        return req.add("port", key, (req.x_key,), req.common, f"port {req.task} align from {req.x_key[:8]}")

    def run_cell(self, cell, store):
        from loraport.port.align import align_port

        p, o = cell.params, self.options()
        prov = {"study_cell": cell.key, "task": p["task"]}
        x, out = store.adapter(p["x"]), store.adapter(cell.key)
        align_port(
            p["source"], p["target"], x, out, texts=o["texts"], ridge=o["ridge"], force=True, provenance=prov
        )

    def port_from(self, job, source, spec):
        from loraport.port.align import align_port

        o = self.options()
        return align_port(
            source,
            job.target_base,
            job.adapter.path,
            job.out,
            texts=o["texts"],
            ridge=o["ridge"],
            force=job.force,
        )


class SpanfitOptions(PromptOptions):
    steps: int = Field(40, ge=0)
    lr: float = Field(0.05, gt=0)


@register_method
class Spanfit(TeacherMethod):
    name = "spanfit"
    requires = frozenset({"anchors", "prompts", "source_base"})
    needs = "anchors + unlabeled prompts of the task"
    summary = "global_ridge's anchor weights, refitted so Y + port imitates X + X adapter's answers"
    Options = SpanfitOptions

    def plan(self, req):
        full = self.options()
        t = req.teach(full)
        key = req.key(
            "port", self.name, full, req.seed, req.pairs, req.x_key, t, req.fp["target"], req.target
        )
        params = {**req.common, "pairs": req.pairs, "teach": t}
        return req.add("port", key, (req.x_key, t, *req.anchor_deps), params, f"port {req.label}")

    def run_cell(self, cell, store):
        from loraport.models import load_config
        from loraport.port.spanfit import spanfit_port
        from loraport.port.teacher import Answers

        p, o = cell.params, self.options()
        spanfit_port(
            anchors_of(p, store),
            load_config(p["source"]),
            load_config(p["target"]),
            store.adapter(p["x"]),
            Answers.load(store.teach(p["teach"])),
            store.adapter(cell.key),
            steps=o["steps"],
            lr=o["lr"],
            seed=p["seed"],
            force=True,
            provenance={"study_cell": cell.key, "task": p["task"]},
        )

    def port_from(self, job, source, spec):
        from loraport.models import load_config
        from loraport.port.spanfit import spanfit_port

        if spec is None:
            raise MethodError(
                "method 'spanfit' needs --anchors (it refits the ridge weights over the target anchors)"
            )
        answers = self.teacher_answers(job, source)
        o = self.options()
        configs = load_config(spec.source_base), load_config(spec.target_base)
        return spanfit_port(
            spec,
            *configs,
            job.adapter.path,
            answers,
            job.out,
            steps=o["steps"],
            lr=o["lr"],
            seed=job.seed,
            force=job.force,
        )


#: distill options added after studies were first cached: left out of the options' dump (and so of
#: cache keys) while they hold their default, so plans that do not use them keep their keys.
_DISTILL_LATE = {
    "consistency": None,
    "temperature": 0.7,
    "weighting": None,
    "weight_floor": 0.25,
    "examples": None,
    "synthesizer": "target",
    "synthesis": "listing",
}
#: left out of the dump (and cache keys) without `examples`: a study's plain variant keeps its key
_SYNTHESIS = ("synthesizer", "synthesis")


class DistillOptions(PromptOptions):
    """distill's options. Better teacher signal, label-free (port.teacher_signal; each off by
    default): `consistency` k samples per prompt at `temperature` (seeded by the port's seed), the
    majority answer kept and prompts without one dropped; `weighting="excess"` weights each answer
    token by the adapter's contrastive excess log p_{X+A} − log p_X, floored at `weight_floor`.
    Prompts from a few examples (port.synth; off by default): `examples` takes only that many of
    the task's train prompts and has the `synthesizer` base (target Y or source X) write the rest of
    the `prompts` (`synthesis`: by continuing a few-shot listing, or by rewriting the examples'
    variable words), filtered (port.prompt_filters)."""

    init: str = "zero"  # zero, or a method whose port starts training (align, global_ridge, spanfit, ...)
    steps: int = Field(60, ge=1)
    seconds: float | None = Field(None, gt=0)
    lr: float = Field(5e-3, gt=0)
    consistency: int | None = Field(None, ge=2)  # k teacher samples per prompt; None: greedy answers
    temperature: float = Field(0.7, gt=0)  # the samples' temperature (with consistency)
    weighting: Literal["excess"] | None = None  # None: every answer token weighs the same
    weight_floor: float = Field(0.25, ge=0)  # a token's weight where the adapter adds nothing
    examples: int | None = Field(None, ge=3)  # given prompts; None: all `prompts` are the task's
    # the base that writes the other prompts (with `examples`, or `loraport port --examples FILE`)
    synthesizer: Literal["target", "source"] = "target"
    # listing: the synthesizer continues a few-shot listing; infill: it rewrites examples' words
    synthesis: Literal["listing", "infill"] = "listing"

    @field_validator("examples")
    @classmethod
    def _fewer(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and v > info.data.get("prompts", v):
            raise ValueError(
                f"{v} examples exceed prompts={info.data['prompts']} (the total to synthesize to)"
            )
        return v

    @field_validator("temperature")
    @classmethod
    def _sampled(cls, v: float, info: ValidationInfo) -> float:
        if v != _DISTILL_LATE["temperature"] and info.data.get("consistency") is None:
            raise ValueError("applies to sampled answers: set consistency (k samples) too")
        return v

    @field_validator("weight_floor")
    @classmethod
    def _weighted(cls, v: float, info: ValidationInfo) -> float:
        if v != _DISTILL_LATE["weight_floor"] and info.data.get("weighting") is None:
            raise ValueError('applies to weighted tokens: set weighting="excess" too')
        return v

    @model_serializer(mode="wrap")
    def _drop_late_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("examples") is None:  # how prompts are synthesized matters only with examples
            data = {k: v for k, v in data.items() if k not in _SYNTHESIS}
        return {k: v for k, v in data.items() if k not in _DISTILL_LATE or v != _DISTILL_LATE[k]}


@register_method
class Distill(TeacherMethod):
    name = "distill"
    requires = frozenset({"prompts", "source_base"})
    needs = "unlabeled prompts of the task (plus what its init needs)"
    summary = "a Y LoRA trained on X + X adapter's answers, from another port or zero, within a budget"
    Options = DistillOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        init = self.opts.init
        choices = ["zero", *(n for n in METHODS.names() if n not in ("distill", "zero"))]
        if init not in choices:
            raise MethodError(
                f"method 'distill': option init={init!r} is not zero or another port method"
                + (closest(init, choices) or f" (one of: {', '.join(choices)})")
            )

    def plan(self, req):
        """A "distill" cell on the teacher's answers, starting from the init method's port of the
        same input (planned as that method plans it) unless init is zero."""
        full = self.options()
        t = req.teach(full)
        init = None if full["init"] == "zero" else req.port(full["init"], {})
        key = req.key("distill", full, req.seed, init, t, req.fp["target"], req.target)
        return req.add(
            "distill", key, (t, init), {**req.common, "teach": t, "init": init}, f"distill {req.label}"
        )

    def run_cell(self, cell, store):
        from loraport.port.distill import distill_port
        from loraport.port.teacher import Answers

        p, o = cell.params, self.options()
        answers = Answers.load(store.teach(p["teach"]))
        answers, signal = self.signal(p["source"], store.adapter(p["x"]), answers, p["seed"])
        distill_port(
            p["target"],
            answers,
            store.adapter(cell.key),
            init=store.adapter(p["init"]) if p["init"] else None,
            steps=o["steps"],
            seconds=o["seconds"],
            lr=o["lr"],
            seed=p["seed"],
            force=True,
            provenance={"study_cell": cell.key, "task": p["task"]},
            **signal,
        )

    def signal(self, source: str, adapter: Any, answers: Any, seed: int) -> tuple[Any, dict[str, Any]]:
        """The teacher answers after self-consistency (when on), and distill_port's weighting
        arguments (when on); both run X + the input adapter (port.teacher_signal)."""
        o = self.opts
        if o.consistency is not None:
            from loraport.port.teacher_signal import self_consistent

            answers = self_consistent(
                source, adapter, answers, k=o.consistency, temperature=o.temperature, seed=seed
            )
        if o.weighting is None:
            return answers, {}
        import time

        from loraport.port.teacher_signal import contrastive_excess

        start = time.perf_counter()
        excess = contrastive_excess(source, adapter, answers)
        # the two scoring passes over X are teacher compute: they count in the port's cost
        answers = replace(answers, seconds=round(answers.seconds + time.perf_counter() - start, 3))
        return answers, {"excess": excess, "weight_floor": o.weight_floor}

    def port_from(self, job, source, spec):
        from loraport.port.distill import distill_port

        answers = self.teacher_answers(job, source)
        answers, signal = self.signal(source, job.adapter.path, answers, job.seed)
        o = self.options()
        init_path = job.init
        with tempfile.TemporaryDirectory(prefix=".init-", dir=Path(job.out).resolve().parent) as tmp:
            if init_path is None and o["init"] != "zero":
                init_path = Path(tmp) / "init"
                # the init method with its default options, ported as `loraport port` would
                init_job = replace(
                    job,
                    out=init_path,
                    source_base=source,
                    init=None,
                    force=False,
                    allow_pickle=False,
                    progress=False,
                )
                get_method(o["init"]).port(init_job)
            return distill_port(
                job.target_base,
                answers,
                job.out,
                init=init_path,
                steps=o["steps"],
                seconds=o["seconds"],
                lr=o["lr"],
                seed=job.seed,
                force=job.force,
                progress=job.progress,
                **signal,
            )
