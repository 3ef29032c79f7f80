"""The recipe_transfer study: does a training recipe (a regularizer) that helps on one base help on
the other, and does the adapter survive the quantized target base? (issue 19)

    name: recipe_transfer
    kind: recipe_transfer
    source: tiny-qwen2-x                 # base X
    target: tiny-llama-y                 # base Y (the one that is quantized)
    heldout: [math_sum_more]             # the tasks every recipe is trained and scored on
    regularizers: {l2_delta: null, entropy: 0.05}   # null: the regularizer's default λ
    schemes: [int8_sym_tensor, int4_sym_row, awq_lite, gguf_q4_0]
    seeds: [0, 1]                        # each seed is recipe.seed: its own data order and init
    tiers: [tiny-llama-s, tiny-llama-y]  # optional: capacity tiers of Y's family, Y one of them

    loraport bench studies/recipe_transfer.yaml --out runs/recipe_transfer

Per task and seed, every regularizer and "none" (the study's recipe as it is) trains an adapter on
X and on Y (train cells with the recipe's regularizer, strength and seed; "none" at the recipe's
own seed is the very cell a port study trains). Each adapter is evaluated on its own base; each Y
adapter also on Y fake-quantized with every scheme (the adapter stays in full precision; eval
cells whose params carry "quant": the "quant" eval variant registered here, computed by
bench.quant_eval); the bases are evaluated alone,
quantized too, for the waterfall. Records carry task, condition (base | adapter), side (x | y),
regularizer, strength, seed and scheme (None: full precision).

With `tiers` (optional; as in a tiers study: smallest first, the target one of them), every recipe
is also trained on each other tier and scored there in full precision (side "tier<i>", i its place
in the list; records carry the tier's name): the regularizer's Δ per tier, and whether it changes
sign between X or Y and a tier. Tiers are not quantized (the quant tax is Y's).

With `anchors` and `methods` (optional), each recipe's X adapter is also ported to Y by every
method variant at each N (anchor adapters with the study's own recipe; the seed draws the anchor
subset, as in a port study), and each port is evaluated on Y and on Y quantized per scheme: does a
regularizer on X change how well X's adapter ports, and what does quantization cost a port?

Its metrics are bench/recipe_metrics.py and its report report/recipe_report.py; both read stored
records only. `loraport report` imports this module, so nothing torch-heavy is imported at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from loraport.bench.cellkinds import EVAL_VARIANTS, EvalVariant
from loraport.bench.kinds import STUDY_KINDS, KindOptions, StudyKind
from loraport.bench.store import content_key

if TYPE_CHECKING:
    from loraport.bench.plan import Planner
    from loraport.bench.spec import Study
    from loraport.evaluate.run import EvalResult

#: The reference recipe every regularizer is compared with: the study's recipe, unregularized.
NONE = "none"
#: Train items of each task that calibrate AWQ-lite and GPTQ-lite (bench.quant_eval).
CALIBRATION = {"n": 32, "seed": 0}
SIDES = {"source": "x", "target": "y"}


class RecipeTransferOptions(KindOptions):
    """The recipe_transfer study's own spec fields."""

    regularizers: dict[str, float | None] = Field(
        default_factory=dict,
        description="recipe_transfer: regularizer -> strength λ (None: its default); 'none' is implied",
    )
    schemes: list[str] = Field(
        default_factory=list, description="recipe_transfer: quantization schemes of the target base"
    )
    tiers: list[str] = Field(
        default_factory=list,
        description="recipe_transfer: capacity tiers of the target's family, smallest first, the target "
        "one of them; every recipe is also trained and scored on the others",
    )

    def bases(self) -> tuple[str, ...]:
        return tuple(self.tiers)

    @field_validator("regularizers")
    @classmethod
    def _known_regularizers(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        from loraport.train.regularizers import RegularizerError, get_regularizer

        for name, strength in v.items():
            if name == NONE:
                raise ValueError("'none' is always the reference; list only the regularizers")
            try:
                reg = get_regularizer(name)
                if strength is not None:
                    reg.check_strength(name, strength)
            except RegularizerError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("schemes")
    @classmethod
    def _known_schemes(cls, v: list[str]) -> list[str]:
        from loraport.quant import QuantError, get_quantizer

        for name in v:
            try:
                get_quantizer(name)
            except QuantError as e:
                raise ValueError(str(e)) from None
        if len(set(v)) < len(v):
            raise ValueError(f"{next(x for x in v if v.count(x) > 1)!r} is listed twice")
        return v

    def check(self, study: Study) -> None:
        if not self.regularizers:
            raise ValueError("regularizers: a recipe_transfer study names at least one regularizer")
        if study.recipe.regularizer is not None:
            raise ValueError(
                "recipe.regularizer: a recipe_transfer study names its regularizers under "
                "`regularizers` (its recipe is the unregularized reference)"
            )
        if study.methods and not study.anchors:
            raise ValueError("methods: porting each recipe's adapter needs anchors; list them")
        if self.tiers:
            if len(set(self.tiers)) < len(self.tiers):
                raise ValueError(
                    f"tiers: {next(t for t in self.tiers if self.tiers.count(t) > 1)!r} is listed twice"
                )
            if len(self.tiers) < 2:
                raise ValueError("tiers: list at least two capacity tiers (the target and another)")
            if study.target not in self.tiers:
                raise ValueError(
                    f"tiers: the target {study.target!r} is not one of them ({', '.join(self.tiers)})"
                )
            if study.source in self.tiers:
                raise ValueError(f"tiers: the source {study.source!r} is X, not a tier of Y's family")


def recipes(study: Study, seed: int) -> dict[str, dict[str, Any]]:
    """ "none" and each regularizer of the study: its Recipe (the study's, with the regularizer,
    strength and seed set) as the JSON dump a train cell keys on."""
    from loraport.train import Recipe

    base = study.recipe.model_dump(mode="json")
    out = {NONE: Recipe(**{**base, "regularizer": None, "strength": None, "seed": seed})}
    for name, strength in study.regularizers.items():
        out[name] = Recipe(**{**base, "regularizer": name, "strength": strength, "seed": seed})
    return {name: r.model_dump(mode="json") for name, r in out.items()}


def evaluate_quantized(p: Planner, task: str, adapter: str | None, scheme: str) -> str:
    """The eval cell of the target base quantized with `scheme`, with adapter cell `adapter` (or
    none) in full precision. Calibration options enter the key only for calibrated schemes."""
    from loraport.quant import get_quantizer
    from loraport.tasks import get_task

    quant: dict[str, Any] = {"scheme": scheme}
    if get_quantizer(scheme).calibrated:
        quant["calibration"] = CALIBRATION
    scorers = list(get_task(task).scorers)
    key = content_key("eval", p.fp["target"], adapter, task, p.ev, scorers, quant)
    label = f"eval {task} on {p.base['target']} [{scheme}]" + (f" + {adapter[:8]}" if adapter else "")
    params = {"base": p.base["target"], "task": task, "adapter": adapter, **p.ev, "quant": quant}
    return p.add("eval", key, (adapter,), params, label)


def plan_recipe_study(p: Planner, study: Study) -> None:
    """Per task: both bases alone (Y also per scheme); per seed and recipe an adapter on each base,
    evaluated on it, and Y's on Y quantized per scheme."""
    from loraport.tasks import get_task

    for task in study.heldout:
        common = {"task": task, "domain": get_task(task).domain}
        for side, s in SIDES.items():
            p.conditions[f"{task}__base_{s}"] = {
                **common,
                "condition": "base",
                "side": s,
                "scheme": None,
                "eval": p.evaluate(side, task, None),
            }
        for scheme in study.schemes:
            p.conditions[f"{task}__base_y__{scheme}"] = {
                **common,
                "condition": "base",
                "side": "y",
                "scheme": scheme,
                "eval": evaluate_quantized(p, task, None, scheme),
            }
        for seed in study.seeds:
            for reg, recipe in recipes(study, seed).items():
                cond = {
                    **common,
                    "condition": "adapter",
                    "regularizer": reg,
                    "strength": recipe.get("strength"),
                    "seed": seed,
                }
                for side, s in SIDES.items():
                    label = f"train {task} on {p.base[side]} ({reg}, seed {seed})"
                    key = p.train(side, task, recipe, label)
                    name = f"{task}__{reg}__s{seed}__{s}"
                    p.conditions[name] = {
                        **cond,
                        "side": s,
                        "scheme": None,
                        "eval": p.evaluate(side, task, key),
                        "train": key,
                    }
                    if side != "target":
                        continue
                    for scheme in study.schemes:
                        p.conditions[f"{name}__{scheme}"] = {
                            **cond,
                            "side": s,
                            "scheme": scheme,
                            "eval": evaluate_quantized(p, task, key, scheme),
                            "train": key,
                        }
                if study.methods:
                    x_key = p.train("source", task, recipe)
                    plan_ports(p, study, task, x_key, {**cond, "condition": "port"})
        plan_tiers(p, study, task, common)


def plan_tiers(p: Planner, study: Study, task: str, common: dict[str, Any]) -> None:
    """Each tier other than the target alone, and every recipe's adapter trained on it (per seed),
    scored on it in full precision; side "tier<i>" (i: the tier's place in `tiers`)."""
    from loraport.bench.tiers_study import tier_planner

    for i, tier in enumerate(study.tiers):
        if tier == study.target:
            continue
        t, s = tier_planner(p, study, tier), f"tier{i}"
        extra = {"side": s, "tier": tier, "scheme": None}
        p.conditions[f"{task}__base_{s}"] = {
            **common,
            **extra,
            "condition": "base",
            "eval": t.evaluate("target", task, None),
        }
        for seed in study.seeds:
            for reg, recipe in recipes(study, seed).items():
                key = t.train("target", task, recipe, f"train {task} on {tier} ({reg}, seed {seed})")
                p.conditions[f"{task}__{reg}__s{seed}__{s}"] = {
                    **common,
                    **extra,
                    "condition": "adapter",
                    "regularizer": reg,
                    "strength": recipe.get("strength"),
                    "seed": seed,
                    "eval": t.evaluate("target", task, key),
                    "train": key,
                }


def plan_ports(p: Planner, study: Study, task: str, x_key: str, cond: dict[str, Any]) -> None:
    """Each method variant ports the X adapter `x_key` (one recipe's) to Y at each N, from the
    seed's anchor subset (anchor adapters with the study's own recipe, as a port study trains them),
    evaluated on Y and on Y quantized per scheme. Its side is "port <variant> N=<n>"."""
    from loraport.bench.port_study import anchor_pairs, anchor_subset, method_ports

    seed = cond["seed"]
    for n in study.n_anchors:
        anchors = anchor_subset(study.anchors, n, seed, "all")
        pairs = anchor_pairs(p, anchors)
        for _, _, variant, key in method_ports(p, study, task, x_key, pairs, seed, n):
            side = f"port {variant} N={n}"
            name = f"{task}__{cond['regularizer']}__s{seed}__{variant}__N{n}"
            common = {
                **cond,
                "side": side,
                "variant": variant,
                "n_anchors": n,
                "anchors": anchors,
                "port": key,
            }
            p.conditions[name] = {**common, "scheme": None, "eval": p.evaluate("target", task, key)}
            for scheme in study.schemes:
                p.conditions[f"{name}__{scheme}"] = {
                    **common,
                    "scheme": scheme,
                    "eval": evaluate_quantized(p, task, key, scheme),
                }


def recipe_study_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The recipe_transfer report (report.recipe_report): Δ per base, sign changes, quant tax,
    waterfall and what the run supports."""
    from loraport.report.recipe_report import recipe_report

    return recipe_report(run_dir, meta, records)


def _quantized(params: dict[str, Any], adapter: Any) -> EvalResult:
    from loraport.bench.quant_eval import quantized_eval

    p = params
    return quantized_eval(p["base"], p["task"], adapter, n=p["n"], seed=p["seed"], **p["quant"])


EVAL_VARIANTS.add("quant", EvalVariant(evaluate=_quantized))


def recipe_results(folder: str, meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The study's section of docs/results.md (report.recipe_report.results_section)."""
    from loraport.report.recipe_report import results_section

    return results_section(folder, meta, summary)


STUDY_KINDS.add(
    "recipe_transfer",
    StudyKind(
        plan=plan_recipe_study,
        report=recipe_study_report,
        options=RecipeTransferOptions,
        results=recipe_results,
    ),
)
