"""The reference reports' headline ("best learned method minus the mean baseline", in accuracy
points), the unusable row, the grouping and the Top-K selection log, on records with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraport.bench.plan import make_plan
from loraport.bench.spec import Study
from loraport.report.headline import best_minus_mean_points
from loraport.testing import write_run_meta

GR, TOPK = "global_ridge", "topk_global_ridge[k=2]"
# correct answers out of 10, per task and condition; methods per seed (0, 1)
SCORES = {
    "math_sum_more": {"base_y": 2, "oracle_y": 8, "teacher": 9, "mean": (3, 5), GR: (6, 8), TOPK: (7, 7)},
    "sci_context_chain": {"base_y": 1, "oracle_y": 5, "teacher": 4, "mean": (1, 1), GR: (2, 2), TOPK: (4, 2)},
    # unusable (oracle equals base); a learned method scores 0.9 here, which must not reach the headline
    "code_paren": {"base_y": 3, "oracle_y": 3, "teacher": 3, "mean": (0, 0), GR: (9, 9), TOPK: (9, 9)},
}
TOPK_CHOICE = {"math_sum_more": ["math_add", "math_mul"], "sci_context_chain": ["sci_context", "math_add"]}


def hand_made_run(root: Path) -> Path:
    study = Study(
        name="hand",
        source="base-x",
        target="base-y",
        anchors=["math_add", "math_mul", "sci_context"],
        heldout=["math_sum_more", "sci_context_chain", "code_paren"],
        methods={"mean": {}, "global_ridge": {}, "topk_global_ridge": {"k": 2}},
        n_anchors=[2],
        seeds=[0, 1],
        eval={"n": 10},
    )
    plan = make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"})
    (root / "records").mkdir(parents=True)
    for name, cond in plan.conditions.items():
        scores = SCORES[cond["task"]]
        if cond["condition"] == "method":
            k = scores[cond["variant"]][cond["seed"]]
        else:
            k = scores[cond["condition"]]
        record = {
            "name": name,
            **{f: v for f, v in cond.items() if f != "eval"},
            "eval_key": cond["eval"],
            "scorers": {
                "exact": {"ids": list(range(10)), "correct": [1] * k + [0] * (10 - k), "invalid": [0] * 10}
            },
            "primary": "exact",
        }
        if cond.get("variant") == TOPK:
            record["topk_selected"] = TOPK_CHOICE.get(cond["task"], ["math_add", "sci_context"])
        (root / "records" / f"{name}.json").write_text(json.dumps(record))
    write_run_meta(root, study, plan)
    return root


def test_headline_matches_the_reference_round4_table():
    """The reference's Round 4 table (accuracies as printed): per usable task the best learned
    method minus mean, averaged; arc_challenge is unusable and left out. The report printed 0.0187
    from unrounded accuracies; the printed ones give 0.0186."""
    rows = {  # task: (usable, mean, [learned methods' accuracies])
        "gsm_hard": (True, 0.057, [0.060, 0.067, 0.067, 0.063, 0.073]),
        "gsm8k_test_500": (True, 0.093, [0.100, 0.100, 0.093, 0.097, 0.100]),
        "mbpp_test_held": (True, 0.240, [0.250, 0.250, 0.250, 0.250, 0.240]),
        "mbpp_plus": (True, 0.213, [0.280, 0.270, 0.270, 0.267, 0.210]),
        "arc_challenge": (False, 0.732, [0.736, 0.729, 0.736, 0.729, 0.739]),
        "openbookqa_test": (True, 0.760, [0.747, 0.743, 0.713, 0.717, 0.753]),
    }
    tasks = {t: {"usable": u, "n": 300} for t, (u, _, _) in rows.items()}
    ptm = {
        t: {"mean|all|N16": {"acc": m, "seeds": [0]}}
        | {f"m{i}|all|N16": {"acc": a, "seeds": [0]} for i, a in enumerate(accs)}
        for t, (_, m, accs) in rows.items()
    }
    h = best_minus_mean_points(ptm, tasks, 16)
    assert h["points"] == pytest.approx(1.86)
    assert "arc_challenge" not in h["tasks"] and len(h["tasks"]) == 5
    assert h["per_task"]["openbookqa_test"]["points"] == pytest.approx(-0.7)  # best learned below mean


def test_headline_none_without_a_learned_method():
    tasks = {"t": {"usable": True, "n": 10}}
    assert best_minus_mean_points({"t": {"mean|all|N1": {"acc": 0.5}}}, tasks, 1) is None


def test_report_states_both_headlines_and_keeps_the_unusable_row(tmp_path):
    from loraport.report import build_report

    run = hand_made_run(tmp_path / "run")
    summary = build_report(run)
    h = summary["best_minus_mean_points"]
    # math_sum_more: best learned 0.7 (global_ridge and topk tie; the first name wins) − mean 0.4 = 30
    # points; sci_context_chain: topk 0.3 − mean 0.1 = 20 points; code_paren is unusable
    assert h["points"] == pytest.approx(25.0)
    assert h["tasks"] == ["math_sum_more", "sci_context_chain"]
    assert h["per_task"]["math_sum_more"]["best"] == GR
    assert h["per_task"]["sci_context_chain"]["best"] == TOPK
    assert h["seeds"] == [0, 1]
    # the aggregate difference is another number: topk's aggregate gap 2/3 minus mean's 1/6
    assert summary["best_learned_minus_mean"] == pytest.approx(0.5)
    assert summary["usable_tasks"] == ["math_sum_more", "sci_context_chain"]

    md = (run / "report.md").read_text()
    assert "**+25.0 accuracy points**" in md
    assert "Aggregate gap difference" in md and "+0.500 (fraction of the oracle's gain)" in md
    main = md.split("## Main table")[1].split("## Method × N")[0]
    assert f"| domain | task | base_Y | mean | {GR} | {TOPK} | oracle |" in main
    # the unusable row keeps its accuracies, flagged
    assert (
        "| code | code_paren | 0.300 | 0.000 | 0.900 | 0.900 | 0.300 | +0.0 | **no** (oracle equals base) |"
        in main
    )
    order = [main.index(f"| {d} | ") for d in ("code", "math", "science")]
    assert order == sorted(order)
    cover = "Covers 2 usable tasks (math_sum_more, sci_context_chain; n = 10 items each) and seeds [0, 1]."
    assert md.count(cover) >= 3  # method × N, K sweep, costs
    # the Top-K log appears with the pool `all` alone (no per-domain pools in this study)
    log = md.split("## Top-K selection log")[1].split("\n## ")[0]
    assert f"| math_sum_more | {TOPK} | math_add, math_mul |" in log
    assert f"| sci_context_chain | {TOPK} | sci_context, math_add |" in log
    assert "shuffled:" not in log
    family = md.split("## Per task: the best of each family")[1].split("\n## ")[0]
    assert "| math | math_sum_more | 0.200 | 0.400 | 0.700 (global_ridge) |" in family
    assert "code_paren (unusable)" in family


def test_report_without_topk_has_no_selection_log(tmp_path):
    from loraport.report import build_report

    run = hand_made_run(tmp_path / "run")
    for p in (run / "records").glob("*.json"):
        if "topk" in p.name:
            p.unlink()
    build_report(run)
    assert "Top-K selection log" not in (run / "report.md").read_text()
